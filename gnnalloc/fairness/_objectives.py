r"""Objectives for multi-objective (fairness) backpropagation: pure tensor functions.

Each takes per-unit utilities :math:`u \in \mathbb{R}^N` (a unit is a user or a link; larger is
better) and returns the vector of objectives :math:`o \in \mathbb{R}^m` to be *maximised*
together, differentiably:

* :func:`unit_objectives`: :math:`o = u` (one objective per user or link; :math:`m = N`).
* :func:`group_objectives`: :math:`o_g = \frac{1}{|g|}\sum_{k \in g} u_k`, the mean utility of
  each group (instance of the batch, service class, strength quartile...).
* :func:`bottom_mean`: the mean of the lowest :math:`\lceil s\,n\rceil` utilities of each group
  (the bottom-decile mean for :math:`s = 0.1`), averaged over groups: a fairness measure whose
  gradient only reaches the worst-off units.
* :func:`log_mean`: the mean of :math:`\log(u + \epsilon)` per group, averaged over groups
  (proportional fairness for non-negative utilities such as rates): strictly concave, so that a
  trade-off against the mean moves smoothly, where :func:`bottom_mean`, piecewise linear, makes
  a decision that is linear in the utilities jump between its extremes.
* :func:`efficiency_fairness`: the pair :math:`(\text{mean over groups of the group mean},\
  \text{fairness})`, the fairness term :func:`bottom_mean` or :func:`log_mean`, whose
  preference-weighted combination traces an efficiency-fairness trade-off.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gnnalloc.core import InputError, check_positive
from gnnalloc.ops import segment_rank

__all__ = [
    "FAIRNESS_TERMS", "bottom_mean", "check_fairness_term", "efficiency_fairness", "group_objectives", "log_mean",
    "unit_objectives",
]

#: The fairness terms of :func:`efficiency_fairness`.
FAIRNESS_TERMS: tuple[str, ...] = ("bottom", "log")


def check_fairness_term(fairness_term: object) -> None:
    """Raise :class:`~gnnalloc.core.InputError` naming ``fairness_term`` unless it is one of
    :data:`FAIRNESS_TERMS`."""
    if fairness_term not in FAIRNESS_TERMS:
        raise InputError(f"fairness_term: unknown {fairness_term!r}, expected one of {', '.join(FAIRNESS_TERMS)}")


def _check(utility: Tensor, group: Tensor | None) -> None:
    if utility.dim() != 1:
        raise InputError(f"utility: expected a vector (N,), got shape {tuple(utility.shape)}")
    if group is not None and group.shape != utility.shape:
        raise InputError(f"group: expected shape {tuple(utility.shape)}, got {tuple(group.shape)}")


def _num_groups(group: Tensor, num_groups: int | None) -> int:
    return int(group.max()) + 1 if num_groups is None and group.numel() else int(num_groups or 0)


def unit_objectives(utility: Tensor) -> Tensor:
    """One objective per unit: the utilities themselves, ``(N,)``."""
    _check(utility, None)
    return utility


def group_objectives(utility: Tensor, group: Tensor, num_groups: int | None = None) -> Tensor:
    """Mean utility of each group, ``(G,)``; ``group`` holds each unit's group id in
    ``0..G-1`` (``G = max + 1`` unless given). An empty group's objective is 0 (no gradient)."""
    _check(utility, group)
    g = _num_groups(group, num_groups)
    total = utility.new_zeros(g).index_add(0, group, utility)
    count = torch.bincount(group, minlength=g).to(utility.dtype)
    return total / count.clamp(min=1.0)


def bottom_mean(utility: Tensor, group: Tensor | None = None, share: float = 0.1,
                num_groups: int | None = None) -> Tensor:
    """Mean of each group's lowest ``ceil(share * n_g)`` utilities (at least one), averaged over
    the non-empty groups; a scalar. ``group=None`` treats all units as one group."""
    _check(utility, group)
    if not 0 < share <= 1:
        raise InputError(f"share: must be in (0, 1], got {share!r}")
    if group is None:
        group = torch.zeros_like(utility, dtype=torch.long)
    g = _num_groups(group, num_groups)
    count = torch.bincount(group, minlength=g)
    keep = torch.ceil(share * count.to(torch.float64)).clamp(min=1).to(torch.long)
    low = segment_rank(group, g, utility) < keep[group]  # each group's lowest utilities
    means = utility.new_zeros(g).index_add(0, group[low], utility[low]) / keep.to(utility.dtype)
    present = count > 0
    return means[present].mean()


def _mean_of_groups(utility: Tensor, group: Tensor | None, num_groups: int | None) -> Tensor:
    """The mean over the non-empty groups of each group's mean utility; a scalar."""
    if group is None:
        return utility.mean()
    means = group_objectives(utility, group, num_groups)
    present = torch.bincount(group, minlength=means.numel()) > 0
    return means[present].mean()


def log_mean(utility: Tensor, group: Tensor | None = None, offset: float = 1e-3,
             num_groups: int | None = None) -> Tensor:
    r"""The mean over groups of each group's mean :math:`\log(u_k + \epsilon)` (``offset``
    :math:`\epsilon > 0`), a scalar; ``utility`` must be non-negative (e.g. rates)."""
    _check(utility, group)
    check_positive("offset", offset)
    if bool((utility < 0).any()):
        raise InputError("utility: the log fairness term needs non-negative utilities (e.g. rates)")
    return _mean_of_groups(torch.log(utility + offset), group, num_groups)


def efficiency_fairness(utility: Tensor, group: Tensor | None = None, share: float = 0.1,
                        num_groups: int | None = None, fairness_term: str = "bottom",
                        log_offset: float = 1e-3) -> Tensor:
    """``(2,)``: efficiency (mean over groups of the mean utility) and fairness:
    :func:`bottom_mean` with ``share`` (``fairness_term`` ``"bottom"``) or :func:`log_mean` with
    ``log_offset`` (``"log"``)."""
    _check(utility, group)
    check_fairness_term(fairness_term)
    fairness = (bottom_mean(utility, group, share, num_groups) if fairness_term == "bottom"
                else log_mean(utility, group, log_offset, num_groups))
    return torch.stack([_mean_of_groups(utility, group, num_groups), fairness])


def _entropy(weights: Tensor) -> float:
    r"""Entropy of the weights as a distribution, :math:`-\sum_i p_i \log p_i / \log m` with
    :math:`p = w / \sum_i w_i` (1 = uniform, 0 = one objective): the one definition the logged
    ``weights_entropy`` of :class:`~gnnalloc.fairness.FairnessLoss` and
    :class:`~gnnalloc.fairness.FairBackward` use. Weights are non-negative by construction (a
    simplex point, a preference, clamped FairGrad weights); a negative rounding residue counts
    as 0."""
    n = weights.numel()
    if n <= 1:
        return 1.0
    w = weights.clamp(min=0)
    p = w / w.sum().clamp(min=1e-300)
    return float(-(p * torch.log(p.clamp(min=1e-300))).sum() / math.log(n))
