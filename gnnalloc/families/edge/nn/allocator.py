"""The learned allocator: graph -> HAN encoder -> decision heads -> feasible projection -> home
refill (the exact local split given the learned migrations) -> optional migration search at
inference."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from gnnalloc.families.edge.graph import SCHEMA, build_graph, collate_graphs
from gnnalloc.nn import (
    CHECKPOINT_FORMAT, Configured, HANEncoder, check_dropout, checkpoint_family, checkpoint_metadata, checkpoint_payload,
    load_checkpoint_data,
)
from gnnalloc.families.edge.nn.heads import DecisionHeads
from gnnalloc.families.edge.problem import Allocation
from gnnalloc.families.edge.problem import Instance
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.projection import FastProjection
from gnnalloc.core import InputError, SolverError, check_count, check_positive, cut_message
from gnnalloc.families.edge.problem import fit_to_capacity
from gnnalloc.families.edge.solvers import improve_migrations
from gnnalloc.families.edge.solvers.functional import refill_home_compute

__all__ = ["Allocator", "Decisions", "FAMILY_NAME"]

#: What checkpoints of this model record as their ``family``.
FAMILY_NAME = "edge"

@dataclass
class Decisions:
    """A forward pass: raw decisions from the heads, their feasible projection, the final output.

    Args:
        raw_compute, raw_bandwidth: head outputs ``(P,)``, ``(U,)`` (the shared representation
            the ``output`` fairness mode differentiates against).
        compute, bandwidth: the final, feasible decisions.
        projected_compute: the projection's compute before the home refill (the same tensor as
            ``compute`` when the pass did not refill).
    """

    raw_compute: Tensor
    raw_bandwidth: Tensor
    compute: Tensor
    bandwidth: Tensor
    projected_compute: Tensor


#: Largest accepted size hyperparameters: far above any useful model (the shipped one has
#: hidden 64, 4 heads, 2 layers), far below what would exhaust memory when allocated.
_SIZE_LIMITS = {
    "hidden": 4096, "heads": 64, "layers": 32, "max_metapath_neighbors": 4096, "search_rounds": 1000,
}


class Allocator(Configured, nn.Module):
    """Maps instances to feasible allocations.

    Args:
        hidden: embedding width of the encoder.
        heads: attention heads.
        layers: HAN layers.
        dropout: dropout probability (training only).
        max_metapath_neighbors: cap on metapath neighbours per user in the graph builder.
        projection_tol: relative tolerance of the fast projection.
        problem_dtype: dtype of decisions, projection and losses (``float64`` keeps the
            projection's feasibility at 1e-7 relative on any instance).
        refill_home: after the projection, re-split each server's capacity among its home users
            exactly, given the migrations (:func:`gnnalloc.families.edge.solvers.functional.refill_home_compute`).
            The network then only has to learn who migrates where (what the refill buys:
            ``benchmarks/bench_refill.py``).
        search_rounds: rounds of :func:`gnnalloc.families.edge.solvers.improve_migrations` that
            :meth:`allocate` runs on the output (0 = off). A monotone search: each round costs
            about one to four refills and never lowers the objective.
    """

    #: The family whose instances this model allocates.
    family_name = FAMILY_NAME

    def __init__(
        self,
        hidden: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.0,
        max_metapath_neighbors: int = 16,
        projection_tol: float = 1e-9,
        problem_dtype: str = "float64",
        refill_home: bool = True,
        search_rounds: int = 0,
    ) -> None:
        super().__init__()
        for name, size in (("hidden", hidden), ("heads", heads)):
            check_count(name, size)
            if size < 1:
                raise InputError(f"{name}: must be >= 1, got {size!r}")
        check_count("layers", layers)
        check_count("max_metapath_neighbors", max_metapath_neighbors)
        check_count("search_rounds", search_rounds)
        # Checked before any tensor is allocated: a crafted checkpoint (hidden = 2**40) must get
        # a named error, not an allocator failure or an exhausted machine.
        for name, size in (("hidden", hidden), ("heads", heads), ("layers", layers),
                           ("max_metapath_neighbors", max_metapath_neighbors),
                           ("search_rounds", search_rounds)):
            if size > _SIZE_LIMITS[name]:
                raise InputError(f"{name}: must be at most {_SIZE_LIMITS[name]}, got {size!r}")
        check_dropout(dropout)
        check_positive("projection_tol", projection_tol)
        if not isinstance(refill_home, bool):
            raise InputError(f"refill_home: must be true or false, got {refill_home!r}")
        if problem_dtype not in ("float32", "float64"):
            raise InputError(f"problem_dtype: expected 'float32' or 'float64', got {problem_dtype!r}")
        self.hparams: dict[str, Any] = dict(
            hidden=hidden, heads=heads, layers=layers, dropout=dropout,
            max_metapath_neighbors=max_metapath_neighbors, projection_tol=projection_tol,
            problem_dtype=problem_dtype, refill_home=refill_home, search_rounds=search_rounds,
        )
        self.encoder = HANEncoder(SCHEMA, hidden=hidden, heads=heads, layers=layers, dropout=dropout)
        self.heads = DecisionHeads(hidden)
        self.projection = FastProjection(tol=projection_tol)
        self.problem_dtype = getattr(torch, problem_dtype)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ----------------------------------------------------------- inputs
    def prepare(self, instances: Sequence[Instance], seed: int = 0) -> tuple[HeteroData, ProblemTensors]:
        """Graph batch and problem tensors of ``instances``, on the model's device."""
        device = self.device
        cap = self.hparams["max_metapath_neighbors"]
        graphs = [build_graph(inst, max_metapath_neighbors=cap, seed=seed) for inst in instances]
        problems = [
            ProblemTensors.from_instance(inst, dtype=self.problem_dtype, device=device)
            for inst in instances
        ]
        if len(instances) == 1:  # nothing to collate: a lone graph encodes as a batch of one
            return graphs[0].to(device), problems[0]
        graph = collate_graphs(graphs).to(device)
        return graph, ProblemTensors.collate(problems)

    # ----------------------------------------------------------- forward
    def forward(
        self, graph: HeteroData, problem: ProblemTensors, refill_home: bool | None = None
    ) -> Decisions:
        """Raw, projected and final decisions for a graph batch and its problem tensors.

        Args:
            graph, problem: from :meth:`prepare` (or a data module's batch).
            refill_home: override the model's ``refill_home`` for this pass (training may skip
                the refill while evaluation and inference keep it).
        """
        raw_compute, raw_bandwidth = self.decide(graph, problem)
        return self.complete(raw_compute, raw_bandwidth, problem, refill_home)

    def decide(self, graph: HeteroData, problem: ProblemTensors) -> tuple[Tensor, Tensor]:
        """The heads' raw decisions ``(raw_compute, raw_bandwidth)`` (per pair, per user)."""
        emb = self.encoder(graph)
        return self.heads(emb["user"], emb["server"], graph, problem)

    def complete(
        self, raw_compute: Tensor, raw_bandwidth: Tensor, problem: ProblemTensors,
        refill_home: bool | None = None,
    ) -> Decisions:
        """:meth:`decide`'s raw decisions projected onto the capacities, then (``refill_home``,
        by default the model's) refilled at home."""
        projected, bandwidth = self.projection(raw_compute, raw_bandwidth, problem)
        refill = self.hparams["refill_home"] if refill_home is None else refill_home
        compute = refill_home_compute(projected, problem) if refill else projected
        return Decisions(raw_compute, raw_bandwidth, compute, bandwidth, projected)

    @torch.no_grad()
    def allocate(self, instance: Instance, search_rounds: int | None = None) -> Allocation:
        """A feasible allocation of ``instance`` (eval mode, no gradients; the last step,
        :func:`~gnnalloc.families.edge.problem.fit_to_capacity`, removes round-off violations on instances
        that mix extreme magnitudes).

        Args:
            instance: the network.
            search_rounds: override the model's ``search_rounds`` for this call.

        Raises:
            SolverError: if the model's decisions on ``instance`` are not finite, or cannot be
                completed (e.g. for weights or quantities at extreme magnitudes).
        """
        rounds = self.hparams["search_rounds"] if search_rounds is None else search_rounds
        check_count("search_rounds", rounds)
        was_training = self.training
        if was_training:  # toggling walks every submodule: skip it in the usual eval-mode case
            self.eval()
        try:
            graph, problem = self.prepare([instance])
            raw_compute, raw_bandwidth = self.decide(graph, problem)
            # Non-finite decisions (from weights or magnitudes at extremes) on a validated
            # instance are this model failing on it, not the caller's input: the projection
            # would refuse them as an input error naming raw_compute, a field nobody sent.
            for name, raw in (("compute", raw_compute), ("bandwidth", raw_bandwidth)):
                if not bool(torch.isfinite(raw).all()):
                    raise SolverError(
                        f"the model's {name} decisions are not finite on this instance; use method dual or exact"
                    )
            try:
                out = self.complete(raw_compute, raw_bandwidth, problem)
            except InputError as exc:
                # Likewise if completing finite decisions overflows (the refill refuses a
                # non-finite projection): only the model's own numbers enter here.
                raise SolverError(
                    f"the model's decisions cannot be completed on this instance ({exc}); use method dual or exact"
                ) from None
            compute = improve_migrations(out.compute, problem, rounds) if rounds else out.compute
        finally:
            if was_training:
                self.train()
        allocation = Allocation(
            compute=compute.detach().to("cpu", torch.float64).numpy(),
            bandwidth=out.bandwidth.detach().to("cpu", torch.float64).numpy(),
        )
        return fit_to_capacity(instance, allocation)

    # ----------------------------------------------------------- checkpoints
    def checkpoint_dict(self, **metadata: Any) -> dict[str, Any]:
        """A small, ``weights_only``-loadable checkpoint of this model."""
        return checkpoint_payload(self, FAMILY_NAME, self.config(), metadata)

    def save(self, path: str | Path, **metadata: Any) -> None:
        """Write :meth:`checkpoint_dict` to ``path``."""
        torch.save(self.checkpoint_dict(**metadata), Path(path))

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, map_location: str | torch.device | None = None
    ) -> "Allocator":
        """Restore a model from a gnnalloc checkpoint or a Lightning checkpoint of
        :class:`gnnalloc.training.AllocatorModule`, loading with ``weights_only=True``.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if the file is not a checkpoint of this model.
        """
        return cls.from_checkpoint_data(load_checkpoint_data(path, map_location), path, map_location)

    @classmethod
    def from_checkpoint_data(
        cls, data: dict[str, Any], path: str | Path, map_location: str | torch.device | None = None
    ) -> "Allocator":
        """:meth:`from_checkpoint` on a checkpoint already loaded by :func:`load_checkpoint_data`
        (``path`` names it in errors), for callers that also read other entries of it.

        Raises:
            ValueError: if ``data`` is not a checkpoint of this model.
        """
        name = repr(str(path))
        hparams, state = data.get("hyper_parameters") or {}, data.get("state_dict")
        stored_format = data.get("format")
        if stored_format is not None and stored_format != CHECKPOINT_FORMAT:
            raise InputError(
                f"checkpoint: {name} has format {stored_format!r}; this library reads {CHECKPOINT_FORMAT!r}"
            )
        family = checkpoint_family(data, path)
        if family != FAMILY_NAME:
            raise InputError(
                f"checkpoint: {name} is a model of the {family!r} family, not {FAMILY_NAME!r}"
            )
        if not isinstance(state, dict):
            raise InputError(f"checkpoint: {name} has no state_dict")
        if stored_format is None:
            # Lightning (no "format" key): the module stores the allocator as `model` and its
            # init args flat.
            if isinstance(hparams, dict):
                hparams = hparams.get("model_config") or hparams
            state = {
                k[len("model.") :]: v for k, v in state.items() if isinstance(k, str) and k.startswith("model.")
            }
        if not isinstance(hparams, dict):
            raise InputError(f"checkpoint: {name}: hyper_parameters is a {type(hparams).__name__}, not a mapping")
        try:
            # Lightning checkpoints also hold the module's own settings (lr, fairness, ...).
            known = inspect.signature(cls).parameters
            model = cls(**{k: v for k, v in hparams.items() if k in known})
        except ValueError as exc:
            raise InputError(f"checkpoint: {name}: hyper_parameters.{exc}") from None
        bad = [k for k, v in state.items() if not (isinstance(v, Tensor) and bool(torch.isfinite(v).all()))]
        if bad:
            raise InputError(f"checkpoint: {name}: state_dict[{bad[0]!r}] is not a finite tensor")
        # Name the first mismatch in one line (torch lists every one over many lines).
        expected = model.state_dict()
        for key in sorted(set(expected) | set(state)):
            if key not in state:
                raise InputError(f"checkpoint: {name} does not match the model: state_dict lacks {key!r}")
            if key not in expected:
                raise InputError(f"checkpoint: {name} does not match the model: unexpected {key!r}")
            if tuple(state[key].shape) != tuple(expected[key].shape):
                raise InputError(
                    f"checkpoint: {name} does not match the model: {key!r} has shape "
                    f"{tuple(state[key].shape)}, the hyperparameters give {tuple(expected[key].shape)}"
                )
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"checkpoint: {name} does not match the model: {cut_message(str(exc))}") from None
        model.checkpoint_path = str(path)
        model.metadata = checkpoint_metadata(data, path)
        model.eval()
        if map_location is not None:
            model.to(map_location)
        return model
