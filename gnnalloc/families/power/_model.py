r"""The learned power allocator: a HAN encoder proposes powers, unrolled WMMSE steps refine them.

.. math::

    q^{(0)} = \sigma\big(\mathrm{MLP}(h_k)\big), \qquad
    q^{(t+1)} = \mathrm{WMMSE}\big(q^{(t)}\big), \quad t < T, \qquad
    p_k = \bar p_k\, q^{(T)}_k,

with :math:`h_k` the link embeddings of the generic :class:`gnnalloc.nn.HANEncoder` over the
interference graph (:mod:`._graph`) and the WMMSE step of :mod:`._links` (re-weighted for the
α-fair utility). The whole map is differentiable, and training maximises the utility after the
last step plus ``start_weight`` (default 0.2) times the utility of the encoder's start
:math:`q^{(0)}` itself (:class:`~._training.PowerModule`; the steps in between are not scored):
the encoder learns a *start* from which a few classical iterations land in a good stationary
point, which a fixed start such as full power does not find (learning to warm-start a solver,
trained through its iterations). A sigmoid never outputs exactly 0, so no link is frozen off by the refinement (WMMSE keeps a link at
zero power there forever).

At inference the answer is the best, per instance, of the refined powers and full power (a
baseline that costs one evaluation), so the learned method is never worse than it.

With ``step_utility`` the steps (training and inference) climb a utility the model carries, the
α-fair kernel :math:`\sum_k w_k f(r_k; m, k, \alpha)` of the rates, instead of the instance's:
the steps then optimise the objective the configuration trains (e.g. proportional fairness,
which sum-rate steps would undo by switching weak links off).

With ``rate_floor`` the answer is then lifted to a minimum rate for all but a few links
(:func:`~._links.lift_to_floor`, the least power increase that reaches it): sum-rate steps switch
about half of the links of a dense layout off, and the floor keeps them served at a small cost in
sum rate.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from gnnalloc.core import InputError, check_count
from gnnalloc.families.power._frame import DEFAULT_FAIR_TIME, frame_setting
from gnnalloc.families.power._graph import SCHEMA, link_batch
from gnnalloc.families.power._links import (
    LinkBatch, lift_to_floor, line_search, link_rates, link_utility, wmmse_step,
)
from gnnalloc.nn import Checkpointed, HANEncoder
from gnnalloc.ops import segment_mean

__all__ = ["FAMILY_NAME", "PowerAllocator"]

#: The family name checkpoints of this model record.
FAMILY_NAME = "power"
#: Inference refines for up to this many times the training's unrolled steps...
INFERENCE_STEP_FACTOR = 4
#: ...except in batches with an instance above this many links, where the steps dominate the
#: inference time and refine ``LARGE_STEP_FACTOR`` times the training's ``refine_steps`` (a
#: little past the steps the start was trained to land in; the speed/quality trade-off is in
#: benchmarks/RESULTS.md).
LARGE_LINKS = 500
LARGE_STEP_FACTOR = 1.25
#: The time head's ``fair_time`` before training: the frame's default.
INITIAL_FAIR_TIME = DEFAULT_FAIR_TIME
#: The most refinement steps of an α-fair instance (as many as WMMSE's own limit).
FAIR_MAX_STEPS = 500
#: ...stopping once every instance's utility changes by less than this, relative, in a step.
REFINE_TOL = 1e-4


def _step_links(links: LinkBatch, setting: tuple[float, float, float] | None) -> LinkBatch:
    """The links with every utility replaced by the α-fair kernel ``(alpha, minimum, penalty)``
    of the ``step_utility`` refinement (same channels and weights); ``links`` itself for ``None``."""
    if setting is None:
        return links
    full = lambda value: torch.full_like(links.snr, value)  # noqa: E731
    alpha, minimum, penalty = setting
    return replace(links, alpha=full(alpha), rate_min=full(minimum), penalty=full(penalty),
                   fair=torch.ones_like(links.fair))


def _check_setting(
    name: str, setting: Any, spec: tuple[tuple[str, float | None, float, float], ...],
) -> tuple[float, ...]:
    """The numbers of a model option given as a mapping, in ``spec`` order, each checked by name:
    ``spec`` rows are ``(key, default or None if required, low, high)``."""
    keys = [key for key, *_ in spec]
    required = {key for key, default, *_ in spec if default is None}
    if not isinstance(setting, dict) or not required <= set(setting) or not set(setting) <= set(keys):
        raise InputError(f"{name}: expected a mapping of {', '.join(keys)} ({', '.join(sorted(required)) or 'none'} "
                         f"required), got {setting!r}")
    values = []
    for key, default, low, high in spec:
        value = setting.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise InputError(f"{name}.{key}: must be a number in [{low:g}, {high:g}], got {value!r}")
        values.append(float(value))
    return tuple(values)


def _check_rate_floor(setting: Any) -> tuple[float, float]:
    """``(rate, max_off)`` of a ``rate_floor`` mapping."""
    rate, max_off = _check_setting("rate_floor", setting, (("rate", None, 1e-9, 100.0), ("max_off", 0.05, 0.0, 0.5)))
    return rate, max_off


def _check_step_utility(setting: Any) -> tuple[float, float, float]:
    """``(alpha, minimum, penalty)`` of a ``step_utility`` mapping."""
    alpha, minimum, penalty = _check_setting(
        "step_utility", setting,
        (("alpha", 1.0, 0.0, 10.0), ("minimum", 1e-6, 1e-9, 100.0), ("penalty", 1.0, 1.0, 1e6)),
    )
    return alpha, minimum, penalty


class PowerAllocator(Checkpointed, nn.Module):
    r"""HAN encoder + sigmoid power head + ``refine_steps`` unrolled WMMSE steps.

    Args:
        hidden: embedding width.
        heads: attention heads per relation.
        layers: encoder layers.
        refine_steps: WMMSE steps after the head (0: the head's powers as they are).
        dropout: dropout in the encoder.
        step_utility: ``None`` (default): the refinement steps climb each instance's own
            utility. Else ``{"alpha": a, "minimum": m, "penalty": k}``: every step (training and
            inference) climbs the α-fair kernel :math:`\sum_k w_k f(r_k; m, k, a)` of the rates
            (:func:`gnnalloc.core.resource_utility`) whatever the instance's utility, and
            inference ranks candidates by it without the on/off candidate: the fairness of the
            allocation becomes a property of the model. ``{"alpha": 1, "minimum": 1e-6}`` is
            proportional fairness that never switches a link off (its slope at rate 0 is
            :math:`k/m`); ``{"alpha": 0, "minimum": m, "penalty": k}`` is the sum rate with every
            link's rate below :math:`m` counted ``k`` times.
        rate_floor: ``None`` (default), or ``{"rate": r, "max_off": f}``: inference lifts its
            answer so that every link gets at least ``r`` bits/s/Hz except, per instance of
            ``K`` links, the :math:`\lfloor f (K - 1) \rfloor` that would need the most power
            (``f`` 0.05 by default), by the least power increase
            (:func:`~._links.lift_to_floor`). Training is unchanged.
        time_sharing: ``False`` (default), or ``True``: the model also has a *time head*,
            :meth:`fair_time`, that predicts per instance the ``fair_time`` :math:`\lambda` of the
            proportional-fair frame (:func:`~._frame.proportional_fair_frame`) its answers are
            served in; it is trained through the frame (``PowerModule(frame_training=...)``) and
            is what the method ``gnn_frame`` uses when no ``fair_time`` or ``p5_rate`` is given.
        frame_training: ``None`` (default), or the ``{"slots", "fair_time", "alpha"}`` of the
            frame the model was trained through (no ``fair_time`` with ``time_sharing``):
            recorded so that ``gnn_frame`` serves it in that frame unless told otherwise.
    """

    family_name = FAMILY_NAME
    #: Bounds on the architecture a checkpoint may ask for, checked before any tensor is allocated.
    size_limits = {"hidden": (1, 4096), "heads": (1, 64), "layers": (0, 64), "refine_steps": (0, 10_000)}
    model_name = "power allocator"

    def __init__(
        self, hidden: int = 64, heads: int = 4, layers: int = 3, refine_steps: int = 6,
        dropout: float = 0.0, step_utility: dict[str, float] | None = None,
        rate_floor: dict[str, float] | None = None, time_sharing: bool = False,
        frame_training: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("hidden", hidden), ("heads", heads), ("layers", layers),
                            ("refine_steps", refine_steps)):
            check_count(name, value)
        self.hparams = {"hidden": hidden, "heads": heads, "layers": layers,
                        "refine_steps": refine_steps, "dropout": dropout}
        self.step_setting: tuple[float, float, float] | None = None
        if step_utility is not None:  # recorded only when set: older checkpoints stay identical
            self.step_setting = _check_step_utility(step_utility)
            self.hparams["step_utility"] = dict(zip(("alpha", "minimum", "penalty"), self.step_setting))
        self.floor_setting: tuple[float, float] | None = None
        if rate_floor is not None:  # recorded only when set, as step_utility
            self.floor_setting = _check_rate_floor(rate_floor)
            self.hparams["rate_floor"] = dict(zip(("rate", "max_off"), self.floor_setting))
        if not isinstance(time_sharing, bool):
            raise InputError(f"time_sharing: expected true or false, got {time_sharing!r}")
        self.time_sharing = time_sharing
        if time_sharing:  # recorded only when set, as step_utility
            self.hparams["time_sharing"] = True
        self.frame_setting: tuple[int, float | None, float] | None = None
        if frame_training is not None:  # recorded only when set
            self.frame_setting = frame_setting(frame_training, learned_fair_time=time_sharing)
            names = ("slots", "fair_time", "alpha")
            self.hparams["frame_training"] = {k: v for k, v in zip(names, self.frame_setting) if v is not None}
        self.refine_steps = refine_steps
        self.encoder = HANEncoder(SCHEMA, hidden, heads, layers, dropout)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.time_head: nn.Module | None = None
        if time_sharing:
            self.time_head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
            with torch.no_grad():  # start at the frame's default fair_time, not at 0.5
                self.time_head[-1].bias.fill_(math.log(INITIAL_FAIR_TIME / (1.0 - INITIAL_FAIR_TIME)))

    def start(self, graph: HeteroData) -> Tensor:
        """The head's power shares :math:`q^{(0)}`, ``(N,)`` in ``(0, 1)``."""
        return torch.sigmoid(self.head(self.encoder(graph)["link"]).squeeze(-1))

    def fair_time(self, graph: HeteroData) -> Tensor:
        r"""The time head's ``fair_time`` :math:`\lambda_b \in (0, 1)` per instance of ``graph``,
        ``(num_graphs,)``: a sigmoid of an MLP of the mean link embedding of each instance.

        Raises:
            ValueError: naming ``time_sharing`` if the model has no time head.
        """
        if self.time_head is None:
            raise InputError("time_sharing: this model has no time head (trained without time_sharing)")
        links = link_batch(graph)
        mean = segment_mean(self.encoder(graph)["link"].T, links.batch, links.num_graphs).T
        return torch.sigmoid(self.time_head(mean).squeeze(-1))

    def forward(self, graph: HeteroData, steps: int | None = None) -> list[Tensor]:
        """Power shares after each refinement step, ``[q0, ..., qT]``, each ``(N,)`` in float64."""
        links = link_batch(graph)
        q = self.start(graph).to(links.snr.dtype)
        out = [q]
        links = _step_links(links, self.step_setting)
        for _ in range(self.refine_steps if steps is None else steps):
            q = wmmse_step(links, q)
            out.append(q)
        return out

    @torch.inference_mode()
    def shares(
        self, graph: HeteroData, steps: int | None = None, tol: float = REFINE_TOL,
        starts: Tensor | None = None,
    ) -> Tensor:
        """The allocator's answer as power shares ``(N,)``.

        Three candidates are refined together: the encoder's start; full power (the classical
        start, so the answer is never below WMMSE from full power after as many steps); and,
        in batches without an instance above ``LARGE_LINKS`` links, the start's on/off rounding
        (links below half power start off, and WMMSE keeps an off link off, so this candidate is
        a learned schedule whose powers the steps then tune, the regime where dense layouts of
        tens to hundreds of links put the optimum; in larger layouts it is far behind). ``starts`` ``(N, S)`` adds further starting
        columns (e.g. a greedy schedule, whose powers the steps then tune the same way). They
        run for at most ``steps`` WMMSE steps (default: the model's ``refine_steps`` times
        ``INFERENCE_STEP_FACTOR``, ``LARGE_STEP_FACTOR`` times it when an instance has more than
        ``LARGE_LINKS`` links, or ``FAIR_MAX_STEPS`` line-searched steps when an instance has the
        α-fair utility, which the encoder's start is not trained for), stopping early once no
        instance's utility changed by more than ``tol`` relative in a step; per instance the
        best candidate seen is kept (full power itself included).

        With ``step_utility`` set, the steps climb that utility (no line search), candidates are
        ranked by it, and the on/off rounding is not a candidate. With ``rate_floor`` set, the
        best candidate is then lifted to the floor.
        """
        links = link_batch(graph)
        setting = self.step_setting
        climbed = _step_links(links, setting)  # the utility the steps climb and candidates are ranked by
        start = self.start(graph).to(links.snr.dtype)
        large = int(torch.bincount(links.batch).max()) > LARGE_LINKS
        # Large layouts: most starts are below half power there, and the rounding loses; a
        # step_utility model keeps every link on, so the rounding is not its candidate either.
        rounding = [] if large or setting is not None else [(start >= 0.5).to(start.dtype)]
        columns = [start, *rounding, torch.ones_like(start)]
        if starts is not None:
            if starts.dim() != 2 or starts.shape[0] != start.shape[0]:
                raise InputError(f"starts: expected shape ({start.shape[0]}, S), got {tuple(starts.shape)}")
            columns += list(starts.to(start).clamp(0.0, 1.0).unbind(1))
        q = torch.stack(columns, dim=1)
        if steps is not None:
            limit = steps
        elif links.any_fair and setting is None:
            # The start is trained on the sum rate; an α-fair instance refines to convergence.
            limit = FAIR_MAX_STEPS
        elif large:
            limit = math.ceil(self.refine_steps * LARGE_STEP_FACTOR)
        else:
            limit = self.refine_steps * INFERENCE_STEP_FACTOR
        best: Tensor | None = None
        best_q = torch.ones_like(start)
        previous: Tensor | None = None
        for step in range(limit + 1):
            if step == limit:  # the last powers only need their utility, not another step
                q_next, per_link = q, link_utility(climbed, link_rates(climbed, q))
            else:  # one step also yields the utility of the powers it started from
                q_next, per_link = wmmse_step(climbed, q, with_utility=True)
            value = per_link.new_zeros((links.num_graphs, q.shape[1])).index_add(0, links.batch, per_link)
            top, column = value.max(dim=1)
            better = top > best if best is not None else torch.ones_like(top, dtype=torch.bool)
            best = top if best is None else torch.where(better, top, best)
            pick = q.gather(1, column.index_select(0, links.batch).unsqueeze(1)).squeeze(1)
            best_q = torch.where(better.index_select(0, links.batch), pick, best_q)
            if step == limit or (
                previous is not None
                and bool(((value - previous).abs() <= tol * value.abs().clamp(min=1e-300)).all())
            ):
                break
            if links.any_fair and setting is None:
                q_next = line_search(links, q, q_next, value)
            previous, q = value, q_next
        if self.floor_setting is not None:
            best_q = lift_to_floor(links, best_q, *self.floor_setting)
        return best_q
