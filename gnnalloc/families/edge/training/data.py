"""Generated instances as Lightning data: no labels, the exact solver only measures.

Training instances are drawn afresh from seeds (a fixed pool per run, cached in memory); the
validation and test suites use fixed seeds far from the training ones and carry the exact
optimum's per-user utilities, computed once, so validation reports the true gap to optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence, get_args

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torch_geometric.data import HeteroData

from gnnalloc.core import InputError, check_count
from gnnalloc.families.edge.generators import eua_instance, random_instance
from gnnalloc.families.edge.graph import build_graph, collate_graphs
from gnnalloc.families.edge.metrics import user_utilities
from gnnalloc.families.edge.problem import Instance
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.solvers import solve_exact

__all__ = [
    "DENSITY_LAWS", "DensityLaw", "InstanceBatch", "InstanceDataModule", "InstanceSet", "check_density_law",
    "collate_instances", "log_uniform", "sample_instance",
]

Topology = Literal["random", "eua", "mixed"]
#: How :func:`sample_instance` can draw the users per server from its range.
DensityLaw = Literal["uniform", "log-uniform"]
DENSITY_LAWS: tuple[str, ...] = get_args(DensityLaw)

TRAIN_SEED_OFFSET = 0
VAL_SEED_OFFSET = 500_000
TEST_SEED_OFFSET = 900_000


@dataclass
class InstanceBatch:
    """A batch: graph and problem tensors of the same instances, plus optional references."""

    graph: HeteroData
    problem: ProblemTensors
    reference_utility: Tensor | None = None

    def to(self, device: torch.device | str) -> "InstanceBatch":
        return InstanceBatch(
            self.graph.to(device),
            self.problem.to(device),
            None if self.reference_utility is None else self.reference_utility.to(device),
        )


def log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One draw whose logarithm is uniform between those of ``bounds`` (both positive)."""
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def check_density_law(name: str, value: object) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of :data:`DENSITY_LAWS`."""
    if not isinstance(value, str) or value not in DENSITY_LAWS:
        raise InputError(f"{name}: must be one of {', '.join(DENSITY_LAWS)}, got {value!r}")


def sample_instance(
    rng: np.random.Generator,
    topology: Topology,
    users: tuple[int, int],
    loads: tuple[float, float],
    users_per_server: tuple[float, float],
    penalty: float,
    alpha: float,
    users_per_server_law: DensityLaw = "uniform",
) -> Instance:
    """One random training instance: size, load and density drawn from the given ranges.

    ``eua`` instances are real sub-regions of the Melbourne topology with as many sites as the
    density requires, so small training instances are as crowded as the full-size ones.
    ``users_per_server_law``: how the users per server are drawn from ``users_per_server``,
    ``"uniform"`` or ``"log-uniform"`` (as many draws per factor of density: for ``(3, 48)``, as
    many between 3 and 12 as between 12 and 48, so a wide range still trains the sparse end).
    Either law takes one draw, so the instance's other draws are the same. The layout then has
    ``max(2, round(n / density))`` servers, so its realised density is near the drawn one.
    """
    check_density_law("users_per_server_law", users_per_server_law)
    if users_per_server_law == "log-uniform" and not 0 < users_per_server[0] <= users_per_server[1]:
        raise InputError(f"users_per_server: need 0 < low <= high for a log-uniform draw, got {users_per_server!r}")
    n = int(rng.integers(users[0], users[1] + 1))
    load = float(rng.uniform(*loads))
    if users_per_server_law == "uniform":
        density = float(rng.uniform(*users_per_server))
    else:
        density = log_uniform(rng, users_per_server)
    seed = int(rng.integers(2**31))
    kind = topology if topology != "mixed" else ("eua" if rng.random() < 0.5 else "random")
    servers = max(2, int(round(n / density)))
    if kind == "eua":
        return eua_instance(n, load, seed, sites=min(servers, 125), penalty=penalty, alpha=alpha)
    return random_instance(n, servers, load, seed, penalty=penalty, alpha=alpha)


class InstanceSet(Dataset):
    """Instances with their graphs, and optionally the exact optimum's per-user utilities.

    Args:
        instances: the instances.
        with_reference: solve each exactly once (cached) to report gaps.
        max_metapath_neighbors: graph builder cap.
    """

    def __init__(
        self, instances: Sequence[Instance], with_reference: bool = False, max_metapath_neighbors: int = 16
    ) -> None:
        self.instances = list(instances)
        self.max_metapath_neighbors = max_metapath_neighbors
        self.references: list[np.ndarray | None] = [None] * len(self.instances)
        self._items: dict[int, tuple] = {}
        if with_reference:
            for i, inst in enumerate(self.instances):
                self.references[i] = user_utilities(inst, solve_exact(inst).allocation)

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> tuple[HeteroData, ProblemTensors, np.ndarray | None]:
        if index not in self._items:
            inst = self.instances[index]
            graph = build_graph(inst, max_metapath_neighbors=self.max_metapath_neighbors, seed=index)
            self._items[index] = (graph, ProblemTensors.from_instance(inst), self.references[index])
        return self._items[index]


def collate_instances(items: Sequence[tuple[HeteroData, ProblemTensors, np.ndarray | None]]) -> InstanceBatch:
    """Collate dataset items into one :class:`InstanceBatch` (graph and problem in one order)."""
    graphs, problems, refs = zip(*items)
    reference = None
    if all(r is not None for r in refs):
        reference = torch.from_numpy(np.concatenate(refs))
    return InstanceBatch(collate_graphs(graphs), ProblemTensors.collate(problems), reference)


class InstanceDataModule(pl.LightningDataModule):
    """Generated allocation instances for training, validation and testing.

    Args:
        topology: ``random``, ``eua`` (real Melbourne sub-regions) or ``mixed``.
        train_instances: size of the training pool.
        users_min, users_max: training instance sizes.
        load_min, load_max: training loads (total minimum demand / capacity).
        users_per_server_min, users_per_server_max: density range of training instances.
        penalty, alpha: utility parameters of every instance.
        batch_size: instances per training batch.
        val_eua_users: users of the EUA validation instances (full 125-site topology).
        val_loads: loads of the EUA validation instances (one instance each).
        val_random_instances: extra random validation instances (sampled like training ones).
        test_eua_users, test_loads: the test suite (EUA, full topology).
        seed: base seed; validation and test seeds are offset far from the training ones.
        num_workers: DataLoader workers.
        max_metapath_neighbors: graph builder cap (must match the model's).
        train_reference: also solve every training instance exactly (once, cached) so that
            training batches carry the optimum's per-user utilities (for regret objectives,
            ``FairnessLoss(baseline=...)``). Labels only; the model still trains on its utility.
    """

    def __init__(
        self,
        topology: Topology = "mixed",
        train_instances: int = 1024,
        users_min: int = 20,
        users_max: int = 100,
        load_min: float = 0.5,
        load_max: float = 1.5,
        users_per_server_min: float = 2.0,
        users_per_server_max: float = 12.0,
        penalty: float = 10.0,
        alpha: float = 1.0,
        batch_size: int = 8,
        val_eua_users: int = 816,
        val_loads: Sequence[float] = (0.6, 1.0, 1.4),
        val_random_instances: int = 8,
        test_eua_users: int = 816,
        test_loads: Sequence[float] = (0.6, 1.0, 1.4),
        seed: int = 0,
        num_workers: int = 0,
        max_metapath_neighbors: int = 16,
        train_reference: bool = False,
    ) -> None:
        super().__init__()
        if users_min < 1 or users_max < users_min:
            raise InputError(f"users_min, users_max: need 1 <= min <= max, got {users_min}, {users_max}")
        if not 0 < load_min <= load_max:
            raise InputError(f"load_min, load_max: need 0 < min <= max, got {load_min}, {load_max}")
        check_count("batch_size", batch_size, minimum=1)
        self.save_hyperparameters()
        self.train_set: InstanceSet | None = None
        self.val_set: InstanceSet | None = None
        self.test_set: InstanceSet | None = None

    def _sample(self, count: int, offset: int) -> list[Instance]:
        h = self.hparams
        rng = np.random.default_rng(h.seed + offset)
        return [
            sample_instance(
                rng, h.topology, (h.users_min, h.users_max), (h.load_min, h.load_max),
                (h.users_per_server_min, h.users_per_server_max), h.penalty, h.alpha,
            )
            for _ in range(count)
        ]

    def _eua_suite(self, users: int, loads: Sequence[float], offset: int) -> list[Instance]:
        h = self.hparams
        return [
            eua_instance(users, float(load), h.seed + offset + i, penalty=h.penalty, alpha=h.alpha)
            for i, load in enumerate(loads)
        ]

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        cap = h.max_metapath_neighbors
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = InstanceSet(self._sample(h.train_instances, TRAIN_SEED_OFFSET),
                                         with_reference=h.train_reference, max_metapath_neighbors=cap)
        if stage in (None, "fit", "validate") and self.val_set is None:
            val = self._eua_suite(h.val_eua_users, h.val_loads, VAL_SEED_OFFSET) if h.val_loads else []
            val += self._sample(h.val_random_instances, VAL_SEED_OFFSET + 1000)
            self.val_set = InstanceSet(val, with_reference=True, max_metapath_neighbors=cap)
        if stage in (None, "test") and self.test_set is None:
            test = self._eua_suite(h.test_eua_users, h.test_loads, TEST_SEED_OFFSET)
            self.test_set = InstanceSet(test, with_reference=True, max_metapath_neighbors=cap)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
            collate_fn=collate_instances, num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=1, collate_fn=collate_instances)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=1, collate_fn=collate_instances)
