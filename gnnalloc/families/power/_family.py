"""The power-control family as the engine sees it: one :class:`gnnalloc.core.ProblemFamily`."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gnnalloc.core import Generator, InstanceError, Method, Setting, SolveResult
from gnnalloc.families.power._allocation import (
    ALLOCATION_FORMAT, FRAME_FORMAT, PowerAllocation, PowerFrame, parse_power_allocation,
)
from gnnalloc.families.power._baselines import full_power, greedy
from gnnalloc.families.power._frame import DEFAULT_SLOTS, check_slot_cap, solve_frame
from gnnalloc.families.power._generators import d2d, gaussian
from gnnalloc.families.power._instance import INSTANCE_FORMAT, PowerInstance
from gnnalloc.families.power._iterative import fp, wmmse
from gnnalloc.families.power._optimum import MAX_OPTIMUM_LINKS, optimum
from gnnalloc.families.power._schema import PowerAllocationV1, PowerFrameV1, PowerInstanceV1
from gnnalloc.families.power._score import PowerScore, score

__all__ = ["METHODS", "PowerFamily", "VALUE_RANGES"]

#: The serving ranges, ``name -> (lowest nonzero, highest)``; zero stays allowed for gains. Gains
#: of real path losses reach 1e-20, noise powers 1e-15 W; every method works on the ratios
#: gain x pmax / noise, which these bounds keep within float64 (and within float32 after the
#: noise normalisation for the learned method).
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "pmax": (1e-12, 1e12),
    "gain": (1e-30, 1e12),
    "noise": (1e-30, 1e12),
    "weight": (1e-6, 1e6),
    "rate_min": (1e-6, 1e3),
    "penalty": (1.0, 1e6),
    "alpha": (1e-6, 100.0),
}

_ITERATIVE_OPTIONS = ("tol", "max_iter", "starts", "seed")
_GNN_OPTIONS = ("allocator", "checkpoint", "refine_steps")
#: The time-sharing methods' own options (:func:`~gnnalloc.families.power.proportional_fair_frame`).
_FRAME_OPTIONS = ("slots", "alpha", "fair_time", "p5_rate", "max_slots")

_UTILITY_SETTINGS = (
    Setting("utility", str, "sum_rate", "sum_rate (weighted sum rate) or alpha_fair"),
    Setting("alpha", float, 1.0, "fairness parameter of alpha_fair (1 = proportional fairness)"),
    Setting("penalty", float, 10.0, "slope of alpha_fair below a link's minimum rate"),
    Setting("rate_min", float, 0.1, "every link's minimum rate in bits/s/Hz (alpha_fair)"),
)

GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator(
            "gaussian", gaussian,
            "Gaussian interference channel (all gains Exp(1), pmax 1, noise 0.1)",
            size="links",
            settings=(Setting("noise", float, 0.1, "noise power"),
                      Setting("pmax", float, 1.0, "power limit of every link"), *_UTILITY_SETTINGS),
        ),
        Generator(
            "d2d", d2d,
            "spatial D2D layout at constant density (ITU-R P.1411, shadowing, Rayleigh)",
            size="links",
            settings=(Setting("density", float, 200.0, "links per km^2"),
                      Setting("d_min", float, 2.0, "shortest link, m"),
                      Setting("d_max", float, 40.0, "longest link, m"),
                      Setting("prune", float, 1e-3, "share of interference pruned per receiver"),
                      *_UTILITY_SETTINGS),
        ),
    )
}


def _gnn(instance: PowerInstance, **options: Any) -> SolveResult:
    # Imported on use: the model pulls in torch_geometric, which the classical methods never need.
    from gnnalloc.families.power._learned import solve_gnn

    return solve_gnn(instance, **options)


def _frame_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options of :func:`solve_frame` among a frame method's ``options`` (removed from them;
    the rest are the per-slot method's)."""
    return {name: options.pop(name) for name in _FRAME_OPTIONS if name in options}


def _gnn_frame(instance: PowerInstance, **options: Any) -> SolveResult:
    from gnnalloc.families.power._learned import gnn_allocate, predicted_fair_time, resolve_allocator

    frame = {name: value for name, value in _frame_options(options).items() if value is not None}
    model = resolve_allocator(options.pop("allocator", None), options.pop("checkpoint", None))
    if model.frame_setting is not None:  # served in the frame it was trained through, unless told otherwise
        slots, fair_time, alpha = model.frame_setting
        if "slots" not in frame:
            check_slot_cap(slots, frame.get("max_slots"), "the model's frame")
            frame["slots"] = slots
        frame.setdefault("alpha", alpha)
        if fair_time is not None and "p5_rate" not in frame:
            frame.setdefault("fair_time", fair_time)
    start = time.perf_counter()
    if model.time_sharing and "fair_time" not in frame and "p5_rate" not in frame:
        # A model with a time head chooses each instance's share of fair time itself.
        frame["fair_time"] = predicted_fair_time(model, instance)
    predicting = time.perf_counter() - start
    result = solve_frame(instance, gnn_allocate(allocator=model, **options), "gnn_frame", **frame)
    return replace(result, seconds=result.seconds + predicting)


def _wmmse_frame(instance: PowerInstance, **options: Any) -> SolveResult:
    frame = _frame_options(options)
    return solve_frame(instance, lambda slot: wmmse(slot, **options).allocation, "wmmse_frame", **frame)


METHODS: dict[str, Method] = {
    "wmmse": Method(
        "wmmse", wmmse,
        "WMMSE (Shi et al. 2011), full power plus three random starts, best kept; reweighted for alpha_fair",
        _ITERATIVE_OPTIONS, kind="reference",
    ),
    "fp": Method(
        "fp", fp,
        "fractional programming, quadratic transform with closed-form power update (Shen & Yu 2018)",
        _ITERATIVE_OPTIONS, kind="classical",
    ),
    "full_power": Method("full_power", full_power, "every link at pmax", (), kind="baseline"),
    "greedy": Method(
        "greedy", greedy, "greedy on/off: switch on the link that most improves the objective", (),
        kind="baseline",
    ),
    "optimum": Method(
        "optimum", optimum,
        f"certified global optimum by branch and bound (at most {MAX_OPTIMUM_LINKS} links)",
        ("rtol", "time_limit"), kind="reference",
    ),
    "gnn": Method(
        "gnn", _gnn,
        "the learned allocator: HAN encoder start + WMMSE refinement (shipped checkpoint unless "
        "checkpoint or allocator is given)",
        _GNN_OPTIONS, kind="learned",
    ),
    "gnn_frame": Method(
        "gnn_frame", _gnn_frame,
        f"proportional-fair time sharing: a frame of {DEFAULT_SLOTS} slots, each the learned allocator's "
        "answer to the weighted sum rate with the scheduler's weights (gnnalloc.power-frame/v1)",
        (*_FRAME_OPTIONS, *_GNN_OPTIONS), kind="learned",
    ),
    "wmmse_frame": Method(
        "wmmse_frame", _wmmse_frame,
        f"proportional-fair time sharing with WMMSE per slot ({DEFAULT_SLOTS} slots, gnnalloc.power-frame/v1)",
        (*_FRAME_OPTIONS, *_ITERATIVE_OPTIONS), kind="classical",
    ),
}


class PowerFamily:
    """Power control in an interference channel (``gnnalloc.power/v1``)."""

    name = "power"
    title = "wireless power control: K links sharing a band choose transmit powers"
    instance_format = INSTANCE_FORMAT
    allocation_format = ALLOCATION_FORMAT
    #: The frames of the ``*_frame`` methods (:class:`PowerFrame`), read wherever allocations are.
    extra_allocation_formats = (FRAME_FORMAT,)
    instance_type: type = PowerInstance
    reference_method = "wmmse"
    instance_schema: type = PowerInstanceV1
    #: For OpenAPI: one model per allocation format (a power vector, a frame).
    allocation_schema: tuple[type, ...] = (PowerAllocationV1, PowerFrameV1)

    def __init__(self) -> None:
        self.methods: dict[str, Method] = dict(METHODS)
        self.generators: Mapping[str, Generator] = GENERATORS
        self.value_ranges: Mapping[str, tuple[float, float]] = dict(VALUE_RANGES)
        # The shipped model of the `gnn` method, beside the package (it may not exist yet).
        self.default_checkpoint: Path | None = Path(__file__).resolve().parents[3] / "checkpoints" / "power.ckpt"

    def __repr__(self) -> str:
        return f"PowerFamily(methods={list(self.methods)})"

    def parse_instance(self, data: Any) -> PowerInstance:
        return PowerInstance.from_dict(data)

    def dump_instance(self, instance: PowerInstance) -> dict[str, Any]:
        return instance.to_dict()

    def parse_allocation(self, instance: PowerInstance, data: Any) -> PowerAllocation | PowerFrame:
        return parse_power_allocation(instance, data)

    def dump_allocation(self, instance: PowerInstance, allocation: PowerAllocation | PowerFrame) -> dict[str, Any]:
        return allocation.to_dict(instance)

    def size(self, instance: PowerInstance) -> int:
        return instance.num_links

    def check_ranges(self, instance: PowerInstance, ranges: Mapping[str, tuple[float, float]]) -> None:
        """Raise :class:`InstanceError` naming the first number outside ``ranges`` (keys as
        :data:`VALUE_RANGES`; a missing key is not checked)."""
        for template, values, _ in instance.number_fields():
            kind = template.rsplit(".", 1)[1]
            if kind not in ranges:
                continue
            lo, hi = ranges[kind]
            bad = np.flatnonzero((values != 0) & ((values < lo) | (values > hi)))
            if bad.size:
                i = int(bad[0])
                zero = "0 or " if kind == "gain" else ""
                where = ""
                if template.startswith("interference"):
                    rx, tx = int(instance.cross_rx[i]), int(instance.cross_tx[i])
                    where = f" (rx {instance.link_ids[rx]!r}, tx {instance.link_ids[tx]!r})"
                raise InstanceError(
                    template.format(i),
                    f"{values[i]!r}{where} is outside the range this server accepts: {zero}{lo:g}..{hi:g}",
                )
        for name in ("noise", "penalty", "alpha"):
            if name in ranges:
                lo, hi = ranges[name]
                value = float(getattr(instance, name))
                if not lo <= value <= hi:
                    raise InstanceError(name, f"{value!r} is outside the range this server accepts: {lo:g}..{hi:g}")

    def score(
        self, instance: PowerInstance, allocation: PowerAllocation | PowerFrame,
        reference: PowerAllocation | PowerFrame | None = None,
        upper_bound: float | None = None,
    ) -> PowerScore:
        return score(instance, allocation, reference, upper_bound)

    # ------------------------------------------------------------------ the learned model
    def load_allocator(self, data: dict[str, Any], path: str | Path) -> Any:
        """The model of a checkpoint already read by :func:`gnnalloc.nn.load_checkpoint_data`."""
        from gnnalloc.families.power._model import PowerAllocator

        return PowerAllocator.from_checkpoint_data(data, path)

    def lightning_classes(self) -> tuple[type, type]:
        """The Lightning module and data module ``gnnalloc fit --family power`` trains."""
        from gnnalloc.families.power._training import PowerDataModule, PowerModule

        return PowerModule, PowerDataModule

    def demo(self, out_dir: Path) -> int:
        """This family's section of ``gnnalloc demo``: the shipped model against WMMSE, FP and
        the baselines on held-out Gaussian and D2D instances."""
        from gnnalloc.families.power._evaluate import power_demo

        return power_demo(out_dir, self.default_checkpoint)

    #: The ``gnnalloc evaluate`` options :meth:`evaluate` reads (others are refused when set).
    evaluate_flags = ("links", "instances")

    def evaluate(self, args: Any) -> int:
        """``gnnalloc evaluate`` for a checkpoint of this family."""
        from gnnalloc.families.power._evaluate import evaluate_cli

        return evaluate_cli(args)
