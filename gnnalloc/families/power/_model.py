r"""The learned power allocator: a HAN encoder proposes powers, unrolled WMMSE steps refine them.

.. math::

    q^{(0)} = \sigma\big(\mathrm{MLP}(h_k)\big), \qquad
    q^{(t+1)} = \mathrm{WMMSE}\big(q^{(t)}\big), \quad t < T, \qquad
    p_k = \bar p_k\, q^{(T)}_k,

with :math:`h_k` the link embeddings of the generic :class:`gnnalloc.nn.HANEncoder` over the
interference graph (:mod:`._graph`) and the WMMSE step of :mod:`._links` (re-weighted for the
α-fair utility). The whole map is differentiable, and training maximises the utility after the
last step (and, with a smaller weight, after each earlier one): the encoder learns a *start* from
which a few classical iterations land in a good stationary point, which a fixed start such as full
power does not find (learning to warm-start a solver, trained through its iterations). A
sigmoid never outputs exactly 0, so no link is frozen off by the refinement (WMMSE keeps a link at
zero power there forever).

At inference the answer is the best, per instance, of the refined powers and full power (a
baseline that costs one evaluation), so the learned method is never worse than it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from gnnalloc.core import check_count
from gnnalloc.families.power._graph import SCHEMA, link_batch
from gnnalloc.families.power._links import LinkBatch, link_rates, link_utility, wmmse_step
from gnnalloc.nn import HANEncoder, checkpoint_payload, load_checkpoint_data, rebuild_model

__all__ = ["FAMILY_NAME", "PowerAllocator", "alpha_rate_utility", "graph_utility"]

#: The family name checkpoints of this model record.
FAMILY_NAME = "power"
#: Inference refines for up to this many times the training's unrolled steps...
INFERENCE_STEP_FACTOR = 4
#: ...except in batches with an instance above this many links, where the steps dominate the
#: inference time and refine only the training's ``refine_steps`` (the steps the start was
#: trained to land in; the trade-off is in benchmarks/RESULTS.md).
LARGE_LINKS = 500
#: The most refinement steps of an α-fair instance (as many as WMMSE's own limit).
FAIR_MAX_STEPS = 500
#: ...stopping once every instance's utility changes by less than this, relative, in a step.
REFINE_TOL = 1e-4
#: Bounds on the architecture a checkpoint may ask for, checked before any tensor is allocated.
_LIMITS = {"hidden": 4096, "heads": 64, "layers": 64, "refine_steps": 10_000}


#: Rate offset (bits/s/Hz) of the steps' own α-fair utility, which keeps it and its slope finite at rate 0.
RATE_FLOOR = 1e-6


def alpha_rate_utility(rates: Tensor, alpha: float, mix: float = 1.0) -> Tensor:
    r"""The utility of a rate that the ``step_alpha`` refinement climbs, elementwise:
    :math:`(1 - \lambda)\, r + \lambda\, g_\alpha(r + \epsilon)` with :math:`\lambda` = ``mix``,
    :math:`g_1 = \ln`, :math:`g_\alpha(x) = x^{1-\alpha}/(1-\alpha)` otherwise, and :math:`\epsilon`
    = ``RATE_FLOOR``: a mixture of the rate (efficiency) and its α-fair utility. Unlike an
    instance's α-fair utility it has no minimum rate below which a link's loss is capped, so with
    :math:`\alpha \ge 1` and :math:`\lambda > 0` switching a link off is never worth it (its slope
    at rate 0 is :math:`\lambda \epsilon^{-\alpha}`), while links well above
    :math:`(\lambda/(1-\lambda))^{1/\alpha}` are treated almost as by the sum rate."""
    x = rates + RATE_FLOOR
    fair = torch.log(x) if abs(alpha - 1.0) < 1e-12 else x.pow(1.0 - alpha) / (1.0 - alpha)
    return fair if mix == 1.0 else (1.0 - mix) * rates + mix * fair


def _alpha_weights(links: LinkBatch, q: Tensor, alpha: float, mix: float = 1.0) -> Tensor:
    r"""The WMMSE weights :math:`a_k = w_k \big(1 - \lambda + \lambda (r_k + \epsilon)^{-\alpha}\big)`,
    the slope of :func:`alpha_rate_utility` (minorise-maximise re-weighting)."""
    weight = links.weight if q.dim() == 1 else links.weight.unsqueeze(-1)
    return weight * (1.0 - mix + mix * (link_rates(links, q) + RATE_FLOOR).pow(-alpha))


def graph_utility(links: LinkBatch, q: Tensor) -> Tensor:
    """Total utility per instance of a batch at power shares ``q``: ``(num_graphs,)``, or
    ``(num_graphs, C)`` for ``C`` candidate columns."""
    per_link = link_utility(links, link_rates(links, q))
    return per_link.new_zeros((links.num_graphs,) + per_link.shape[1:]).index_add(0, links.batch, per_link)


def _line_search(links: LinkBatch, q: Tensor, step: Tensor, value: Tensor, halvings: int = 8) -> Tensor:
    r"""Per instance and candidate column, the full step ``s`` (the re-weighted step) if it
    improves on ``value`` (the utility at ``q``), else the best of :math:`q + t\,(s - q)` for
    :math:`t = 1/2, \dots, 2^{-\text{halvings}}` if that improves, else ``q``: the re-weighted step is an ascent direction of
    the α-fair utility but its full length can overshoot, and this keeps the refinement monotone
    (the line-searched minorise-maximise step of the ``wmmse`` solver).

    Args:
        links: the batch; q, step: ``(N, C)`` shares; value: ``(num_graphs, C)`` utility at ``q``.
    """
    t = torch.pow(2.0, -torch.arange(halvings + 1, dtype=q.dtype, device=q.device))
    trial = q.unsqueeze(-1) + (step - q).unsqueeze(-1) * t  # (N, C, T)
    utility = graph_utility(links, trial.reshape(q.shape[0], -1)).view(value.shape + t.shape)
    top, index = utility.max(dim=-1)
    full = utility[..., 0] > value  # the full step when it improves, as the solver does
    index = torch.where(full, torch.zeros_like(index), index)
    top = torch.where(full, utility[..., 0], top)
    pick = trial.gather(-1, index.index_select(0, links.batch).unsqueeze(-1)).squeeze(-1)
    return torch.where((top > value).index_select(0, links.batch), pick, q)


class PowerAllocator(nn.Module):
    """HAN encoder + sigmoid power head + ``refine_steps`` unrolled WMMSE steps.

    Args:
        hidden: embedding width.
        heads: attention heads per relation.
        layers: encoder layers.
        refine_steps: WMMSE steps after the head (0: the head's powers as they are).
        dropout: dropout in the encoder.
        step_alpha: if set, every refinement step (training and inference) climbs
            :func:`alpha_rate_utility` with this α instead of the instance's own utility, and
            inference keeps, per instance, the candidate with the highest such utility
            (weighted): the fairness of the allocation is then a property of the model, e.g.
            tied to an efficiency-fairness trade-off weight. ``None`` (default): the instance's
            utility.
    """

    def __init__(
        self, hidden: int = 64, heads: int = 4, layers: int = 3, refine_steps: int = 6,
        dropout: float = 0.0, step_alpha: float | None = None, step_mix: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value in (("hidden", hidden), ("heads", heads), ("layers", layers),
                            ("refine_steps", refine_steps)):
            check_count(name, value)
        if step_alpha is not None and (isinstance(step_alpha, bool) or not isinstance(step_alpha, (int, float))
                                       or not 0.0 <= step_alpha <= 10.0):
            raise ValueError(f"step_alpha: must be in [0, 10], got {step_alpha!r}")
        if isinstance(step_mix, bool) or not isinstance(step_mix, (int, float)) or not 0.0 < step_mix <= 1.0:
            raise ValueError(f"step_mix: must be in (0, 1], got {step_mix!r}")
        self.hparams = {"hidden": hidden, "heads": heads, "layers": layers,
                        "refine_steps": refine_steps, "dropout": dropout}
        if step_alpha is not None:  # recorded only when set: older checkpoints stay identical
            self.hparams["step_alpha"] = float(step_alpha)
            self.hparams["step_mix"] = float(step_mix)
        self.step_alpha, self.step_mix = step_alpha, float(step_mix)
        self.refine_steps = refine_steps
        self.encoder = HANEncoder(SCHEMA, hidden, heads, layers, dropout)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def start(self, graph: HeteroData) -> Tensor:
        """The head's power shares :math:`q^{(0)}`, ``(N,)`` in ``(0, 1)``."""
        return torch.sigmoid(self.head(self.encoder(graph)["link"]).squeeze(-1))

    def forward(self, graph: HeteroData, steps: int | None = None) -> list[Tensor]:
        """Power shares after each refinement step, ``[q0, ..., qT]``, each ``(N,)`` in float64."""
        links = link_batch(graph)
        q = self.start(graph).to(links.snr.dtype)
        out = [q]
        alpha = self.step_alpha
        for _ in range(self.refine_steps if steps is None else steps):
            q = wmmse_step(links, q, None if alpha is None else _alpha_weights(links, q, alpha, self.step_mix))
            out.append(q)
        return out

    @torch.inference_mode()
    def shares(
        self, graph: HeteroData, steps: int | None = None, tol: float = REFINE_TOL,
        starts: Tensor | None = None,
    ) -> Tensor:
        """The allocator's answer as power shares ``(N,)``.

        Three candidates are refined together: the encoder's start; its on/off rounding (links
        below half power start off, and WMMSE keeps an off link off, so this candidate is a
        learned schedule whose powers the steps then tune, the regime where dense layouts put
        the optimum); and full power (the classical start, so the answer is never below WMMSE
        from full power after as many steps). ``starts`` ``(N, S)`` adds further starting
        columns (e.g. a greedy schedule, whose powers the steps then tune the same way). They
        run for at most ``steps`` WMMSE steps (default: the model's ``refine_steps`` times
        ``INFERENCE_STEP_FACTOR``, only ``refine_steps`` when an instance has more than
        ``LARGE_LINKS`` links, or ``FAIR_MAX_STEPS`` line-searched steps when an instance has the
        α-fair utility, which the encoder's start is not trained for), stopping early once no
        instance's utility changed by more than ``tol`` relative in a step; per instance the
        best candidate seen is kept (full power itself included).

        With ``step_alpha`` set, the steps climb :func:`alpha_rate_utility` (no line search),
        candidates are ranked by it, and the on/off rounding is not a candidate: that utility
        (α > 0) is built to keep every link on.
        """
        links = link_batch(graph)
        alpha = self.step_alpha
        start = self.start(graph).to(links.snr.dtype)
        schedule = (start >= 0.5).to(start.dtype)
        columns = [start, schedule, torch.ones_like(start)] if alpha is None else [start, torch.ones_like(start)]
        if starts is not None:
            if starts.dim() != 2 or starts.shape[0] != start.shape[0]:
                raise ValueError(f"starts: expected shape ({start.shape[0]}, S), got {tuple(starts.shape)}")
            columns += list(starts.to(start).clamp(0.0, 1.0).unbind(1))
        q = torch.stack(columns, dim=1)
        if steps is not None:
            limit = steps
        elif links.any_fair and alpha is None:
            # The start is trained on the sum rate; an α-fair instance refines to convergence.
            limit = FAIR_MAX_STEPS
        elif int(torch.bincount(links.batch).max()) > LARGE_LINKS:
            limit = self.refine_steps
        else:
            limit = self.refine_steps * INFERENCE_STEP_FACTOR
        best: Tensor | None = None
        best_q = torch.ones_like(start)
        previous: Tensor | None = None
        for step in range(limit + 1):
            # One step also yields the utility of the powers it started from (same interference).
            if alpha is None:
                q_next, per_link = wmmse_step(links, q, with_utility=True)
            else:
                q_next = wmmse_step(links, q, _alpha_weights(links, q, alpha, self.step_mix))
                rates = link_rates(links, q)
                per_link = links.weight.unsqueeze(-1) * alpha_rate_utility(rates, alpha, self.step_mix)
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
            if links.any_fair and alpha is None:
                q_next = _line_search(links, q, q_next, value)
            previous, q = value, q_next
        return best_q

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (recorded in checkpoints)."""
        return dict(self.hparams)

    # ----------------------------------------------------------------------- checkpoints
    def checkpoint_dict(self, **metadata: Any) -> dict[str, Any]:
        """A small ``weights_only``-loadable checkpoint recording the family."""
        return checkpoint_payload(self, FAMILY_NAME, self.config(), metadata)

    def save(self, path: str | Path, **metadata: Any) -> None:
        """Write :meth:`checkpoint_dict` to ``path``."""
        torch.save(self.checkpoint_dict(**metadata), Path(path))

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device | None = None) -> "PowerAllocator":
        """The model of a gnnalloc or Lightning checkpoint file (``weights_only`` loading)."""
        model = cls.from_checkpoint_data(load_checkpoint_data(path, map_location), path)
        return model if map_location is None else model.to(map_location)

    @classmethod
    def from_checkpoint_data(cls, data: dict[str, Any], path: str | Path = "checkpoint") -> "PowerAllocator":
        """The model of a loaded checkpoint: a gnnalloc checkpoint, or a Lightning checkpoint
        of the power training module (its allocator is stored as ``model``).

        Raises:
            ValueError: naming the bad entry (family, ``hyper_parameters.*``, ``state_dict``);
                the architecture's sizes are bounded before any tensor is allocated.
        """
        limits = {key: (0, high) for key, high in _LIMITS.items()}
        return rebuild_model(cls, data, path, FAMILY_NAME, limits, "power allocator")
