"""The split-federated-learning family as a value for the engine (:class:`ProblemFamily`)."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from gnnalloc.core import Generator, InstanceError, Method, Setting
from gnnalloc.families.sfl._allocation import ALLOCATION_FORMAT, SflAllocation
from gnnalloc.families.sfl._baselines import run_equal, run_proportional
from gnnalloc.families.sfl._methods import run_exact
from gnnalloc.families.sfl._generators import DEFAULT_SETTINGS, random_sfl
from gnnalloc.families.sfl._instance import INSTANCE_FORMAT, SflInstance
from gnnalloc.families.sfl._schema import SflInstanceV1
from gnnalloc.families.sfl._score import SflScore, score

__all__ = ["SflFamily", "FAMILY", "VALUE_RANGES"]

#: The serving ranges of an instance's numbers, ``field -> (lowest nonzero, highest)``, keyed by
#: the JSON path without indices (``clients.gain``).
VALUE_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType({
    "server.bandwidth": (1e3, 1e10), "server.noise_psd": (1e-24, 1e-12), "server.cpu": (1e6, 1e16),
    "server.downlink_rate": (1e3, 1e12),
    "layers.device_flops": (1.0, 1e14), "layers.server_flops": (1.0, 1e14),
    "layers.activation_bits": (1.0, 1e12), "layers.gradient_bits": (1.0, 1e12),
    "layers.device_model_bits": (1.0, 1e13),
    "clients.samples": (1.0, 1e6), "clients.gain": (1e-20, 1.0), "clients.cpu_min": (1e3, 1e12),
    "clients.cpu_max": (1e3, 1e12), "clients.power_min": (1e-9, 1e3), "clients.power_max": (1e-9, 1e3),
    "clients.energy_max": (1e-9, 1e6), "clients.kappa": (1e-40, 1e-20),
    "clients.cycles_per_flop": (1e-3, 1e3), "clients.weight": (1e-6, 1e6),
})


def _run_gnn(instance: SflInstance, **options: Any):
    """The ``gnn`` method (:func:`gnnalloc.families.sfl._learned.solve_gnn`), imported on first
    use so that loading the family does not load the model's code."""
    from gnnalloc.families.sfl._learned import solve_gnn

    return solve_gnn(instance, **options)


class SflFamily:
    """Split federated learning: per client a split layer, a bandwidth share, a CPU frequency and
    a transmit power; minimise the round time (``minmax``) or the weighted latency sum, under each
    client's energy budget. The objective reported is the negated cost."""

    name = "sfl"
    title = "split federated learning: split layer, bandwidth, CPU and power for the shortest round"
    instance_format = INSTANCE_FORMAT
    allocation_format = ALLOCATION_FORMAT
    instance_type = SflInstance
    reference_method = "exact"
    value_ranges = VALUE_RANGES
    instance_schema = SflInstanceV1
    # The learned allocator's shipped model (it may not exist yet).
    default_checkpoint: Path | None = Path(__file__).resolve().parents[3] / "checkpoints" / "sfl.ckpt"

    def __init__(self) -> None:
        self.methods: Mapping[str, Method] = MappingProxyType({
            "exact": Method(
                "exact", run_exact,
                "bisection on the round time with each client's least share in closed form; "
                "certified bracket (minmax)", options=("tolerance",), kind="reference",
            ),
            "equal": Method("equal", run_equal, "equal shares, the best common split, fastest within budgets", kind="baseline"),
            "proportional": Method(
                "proportional", run_proportional,
                "energy-floor shares plus the rest in proportion to demand, the best common split",
                kind="baseline",
            ),
            "gnn": Method(
                "gnn", _run_gnn,
                "a HAN encoder predicts the round time, the exact bisection finishes from it; "
                "never worse than equal (minmax)",
                options=("allocator", "checkpoint", "tolerance", "spread"), kind="learned",
            ),
        })
        self.generators = MappingProxyType({"sfl": Generator(
            "sfl", random_sfl,
            "clients on a disc around the server training a real architecture's layers",
            size="clients",
            settings=tuple(
                Setting(name, type(default), default) for name, default in DEFAULT_SETTINGS.items()
            ),
        )})

    def parse_instance(self, data: Any) -> SflInstance:
        return SflInstance.from_dict(data)

    def dump_instance(self, instance: SflInstance) -> dict[str, Any]:
        return instance.to_dict()

    def parse_allocation(self, instance: SflInstance, data: Any) -> SflAllocation:
        return SflAllocation.from_dict(instance, data)

    def dump_allocation(self, instance: SflInstance, allocation: SflAllocation) -> dict[str, Any]:
        return allocation.to_dict(instance)

    def size(self, instance: SflInstance) -> int:
        return instance.num_clients

    def check_ranges(self, instance: SflInstance, ranges: Mapping[str, tuple[float, float]]) -> None:
        """``InstanceError`` naming the first number that is neither 0 nor within its range."""
        for template, values in instance.number_fields():
            key = template.replace("[{}]", "")
            if key not in ranges:
                continue
            low, high = ranges[key]
            bad = (values != 0) & ((values < low) | (values > high))
            if bad.any():
                i = int(bad.argmax())
                path = template.format(i) if "{}" in template else template
                raise InstanceError(path, f"must be 0 or in [{low:g}, {high:g}] here, got {float(values[i])!r}")

    def score(
        self, instance: SflInstance, allocation: SflAllocation, reference: SflAllocation | None = None,
        upper_bound: float | None = None,
    ) -> SflScore:
        return score(instance, allocation, reference, upper_bound)

    def load_allocator(self, data: dict[str, Any], path: str | Path) -> Any:
        """The model of a checkpoint already read by :func:`gnnalloc.nn.load_checkpoint_data`."""
        from gnnalloc.families.sfl._allocator import RoundTimePredictor

        return RoundTimePredictor.from_checkpoint_data(data, path)

    def lightning_classes(self) -> tuple[type, type]:
        """The Lightning module and data module of ``gnnalloc fit --family sfl``."""
        from gnnalloc.families.sfl._training import SflDataModule, SflModule

        return SflModule, SflDataModule

    def demo(self, out_dir: Path) -> int:
        """This family's section of ``gnnalloc demo``: every method against the certified
        optimum at 10 / 100 / 1,000 clients."""
        from gnnalloc.families.sfl._evaluate import sfl_demo

        return sfl_demo(out_dir, self.default_checkpoint)

    #: The ``gnnalloc evaluate`` options :meth:`evaluate` reads (others are refused when set).
    evaluate_flags = ("links", "instances")

    def evaluate(self, args: Any) -> int:
        """``gnnalloc evaluate`` for a checkpoint of this family."""
        from gnnalloc.families.sfl._evaluate import evaluate_cli

        return evaluate_cli(args)

    def __repr__(self) -> str:
        return "SflFamily()"


FAMILY = SflFamily()
