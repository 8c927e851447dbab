"""The edge family as a value the engine reads: :data:`FAMILY` implements
:class:`gnnalloc.core.ProblemFamily`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gnnalloc.core import Generator, InstanceError, Method, Setting
from gnnalloc.families.edge._methods import METHODS, default_checkpoint, load_edge_model
from gnnalloc.families.edge.generators import eua_instance, random_instance
from gnnalloc.families.edge.metrics import Score, score
from gnnalloc.families.edge.problem import (
    ALLOCATION_FORMAT, INSTANCE_FORMAT, Allocation, Instance, load_allocation,
)
from gnnalloc.families.edge.schema import AllocationV1, InstanceV1
from gnnalloc.families.edge.solvers import load_dual_kernels
from gnnalloc.ops import load_relation_attention

__all__ = ["EdgeFamily", "FAMILY", "VALUE_RANGES"]

# The library accepts any finite value its validation allows, but its numerics (projection,
# baselines, Clarabel) overflow on extreme magnitudes (capacities near 1e308, penalty 1e300,
# alpha 1e4 in the exact solver). The server refuses what it cannot answer reliably instead of
# returning NaN or a 500. Bounds: (lowest nonzero, highest); zero stays allowed where the format
# allows it. Measured (tests/serve/test_app.py, and a 1,200-instance grid per alpha): gnn, dual,
# equal and proportional are finite and feasible to 1e-7 at every corner of these ranges mixed
# in one instance.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "quantity": (1e-12, 1e12),  # capacities, minimum demands, data rates
    "weight": (1e-6, 1e6),
    "penalty": (1.0, 1e6),
    "alpha": (1e-6, 100.0),
}

_UTILITY_SETTINGS = (
    Setting("load", float, 1.0, "total minimum demand / capacity"),
    Setting("penalty", float, 10.0, "slope of the utility below a minimum"),
    Setting("alpha", float, 1.0, "fairness parameter (1 = log utility)"),
)


def _random(users: int, seed: int = 0, *, servers: int = 20, load: float = 1.0,
            penalty: float = 10.0, alpha: float = 1.0) -> Instance:
    return random_instance(users, servers, load, seed, penalty=penalty, alpha=alpha)


def _eua(users: int, seed: int = 0, *, load: float = 1.0, penalty: float = 10.0,
         alpha: float = 1.0) -> Instance:
    return eua_instance(users, load, seed, penalty=penalty, alpha=alpha)


GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator(
            "random", _random, "random geometric network in the unit square", size="users",
            settings=(Setting("servers", int, 20, "number of servers"), *_UTILITY_SETTINGS),
        ),
        Generator(
            "eua", _eua, "the real EUA Melbourne CBD topology (125 sites)", size="users",
            settings=_UTILITY_SETTINGS,
        ),
    )
}


class EdgeFamily:
    """Edge computing: each user gets access bandwidth at its home server and compute at candidate
    servers, migrated work loads the links between them (``gnnalloc.instance/v1``)."""

    name = "edge"
    title = "edge computing: compute and access bandwidth per user, with migration over links"
    instance_format = INSTANCE_FORMAT
    allocation_format = ALLOCATION_FORMAT
    instance_type = Instance
    methods: Mapping[str, Method] = METHODS
    reference_method = "exact"
    generators: Mapping[str, Generator] = GENERATORS
    value_ranges: Mapping[str, tuple[float, float]] = VALUE_RANGES
    instance_schema = InstanceV1
    allocation_schema = AllocationV1

    @property
    def default_checkpoint(self) -> Path:
        return default_checkpoint()

    def parse_instance(self, data: Any) -> Instance:
        return Instance.from_dict(data)

    def dump_instance(self, instance: Instance) -> dict[str, Any]:
        return instance.to_dict()

    def parse_allocation(self, instance: Instance, data: Any) -> Allocation:
        return Allocation.from_dict(instance, data)

    def load_allocation(self, instance: Instance, path: str | Path) -> Allocation:
        return load_allocation(instance, path)

    def dump_allocation(self, instance: Instance, allocation: Allocation) -> dict[str, Any]:
        return allocation.to_dict(instance)

    def size(self, instance: Instance) -> int:
        return instance.num_users

    def check_ranges(self, instance: Instance, ranges: Mapping[str, tuple[float, float]]) -> None:
        for template, values, _ in instance.number_fields():
            kind = "weight" if template.endswith(".weight") else "quantity"
            lo, hi = ranges[kind]
            # Zero passed the library's validation only where the format allows it.
            bad = np.flatnonzero((values != 0) & ((values < lo) | (values > hi)))
            if bad.size:
                i = int(bad[0])
                allowed = f"0 or {lo:g}..{hi:g}" if kind == "quantity" else f"{lo:g}..{hi:g}"
                raise InstanceError(
                    template.format(i),
                    f"{values[i]!r} is outside the range this server accepts: {allowed}",
                )
        for name in ("penalty", "alpha"):
            lo, hi = ranges[name]
            value = float(getattr(instance, name))
            if not lo <= value <= hi:
                raise InstanceError(
                    name, f"{value!r} is outside the range this server accepts: {lo:g}..{hi:g}"
                )

    def score(
        self, instance: Instance, allocation: Allocation, reference: Allocation | None = None,
        upper_bound: float | None = None,
    ) -> Score:
        return score(instance, allocation, reference, upper_bound)

    def load_allocator(self, data: dict[str, Any], path: str | Path) -> Any:
        """The model of a checkpoint already read by :func:`gnnalloc.nn.load_checkpoint_data`."""
        return load_edge_model(data, path)

    #: Settings the Lightning module and data module share (``gnnalloc fit``).
    lightning_links = (("model.max_metapath_neighbors", "data.max_metapath_neighbors"),)

    def lightning_classes(self) -> tuple[type, type]:
        """The Lightning module and data module of ``gnnalloc fit --family edge``."""
        from gnnalloc.families.edge.training import AllocatorModule, InstanceDataModule

        return AllocatorModule, InstanceDataModule

    def warm_up(self) -> None:
        """Load (or compile) the dual solver's kernels and the encoder's attention kernel, else
        the first ``dual`` or ``gnn`` call pays."""
        load_dual_kernels()
        load_relation_attention()

    def demo(self, out_dir: Path) -> int:
        """This family's section of ``gnnalloc demo``: the shipped model on EUA Melbourne."""
        from gnnalloc.families.edge.training.evaluate import demo

        return demo(out_dir=out_dir, checkpoint=self.default_checkpoint)

    #: The ``gnnalloc evaluate`` options :meth:`evaluate` reads (others are refused when set).
    evaluate_flags = ("suite", "users", "loads", "seeds", "servers", "exact_max_users", "search_rounds", "dual_iterations")

    def evaluate(self, args: Any) -> int:
        """``gnnalloc evaluate`` for a checkpoint of this family."""
        from gnnalloc.families.edge.training.evaluate import evaluate_cli

        return evaluate_cli(args)

    def __repr__(self) -> str:
        return f"<problem family {self.name!r}: {self.instance_format}>"


FAMILY = EdgeFamily()
