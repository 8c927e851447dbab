r"""Aggregators: weights :math:`c \in \mathbb{R}^m` for the objectives' gradients from their Gram
matrix :math:`G = J J^\top` alone, so that the update direction is :math:`d = J^\top c`.

* ``sum``: :math:`c = \pi` (a preference vector on the simplex, uniform by default): the
  weighted mean of the objectives, plain scalarisation.
* ``mgda``: :math:`c = \arg\min_{w \in \Delta_m} w^\top G w`, the min-norm point of the convex
  hull of the gradients, solved by the certified :func:`~gnnalloc.fairness.min_norm_weights`
  (exact active-set solution with a duality-gap certificate, cheap for :math:`m \gg d`).
  :math:`\langle g_j, d\rangle \ge \|d\|^2` for every :math:`j`.
* ``upgrad``: torchjd's UPGrad (Quinton & Rey 2024): each row :math:`\pi_i e_i` is projected
  onto the dual cone :math:`\{v : G v \ge 0\}` in the :math:`G` metric and the projections are
  summed, so :math:`G c \ge 0`: the direction never conflicts with any objective (unlike the
  sum), and, unlike MGDA, it keeps the preference's proportions where there is no conflict.
* ``alpha_fair``: torchjd's FairGrad weighting (Ban & Ji 2024): :math:`c` solves
  :math:`(G c)_i = c_i^{-1/\alpha}`, i.e. the update is the α-fair allocation of the objectives'
  improvements (:math:`\alpha \to 0`: sum; :math:`\alpha = 1`: proportional fairness;
  :math:`\alpha \to \infty`: max-min). Its scale depends on :math:`\|G\|`; it is normalised to
  :math:`\sum c = 1`.

torchjd is an optional dependency (``gnnalloc[train]``), imported only when ``upgrad`` or
``alpha_fair`` is used.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from gnnalloc.core import InputError, check_nonnegative
from gnnalloc.fairness._min_norm import MinNormResult, min_norm_weights

__all__ = ["AGGREGATORS", "Aggregator", "aggregate"]

Aggregator = Literal["sum", "mgda", "upgrad", "alpha_fair"]
AGGREGATORS: tuple[str, ...] = ("sum", "mgda", "upgrad", "alpha_fair")


def _torchjd():
    try:
        import torchjd.aggregation as aggregation
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("aggregator: 'upgrad' and 'alpha_fair' need torchjd; "
                          "pip install 'gnnalloc[train]'") from exc
    return aggregation


def aggregate(gram: Tensor, aggregator: Aggregator = "sum", preference: Tensor | None = None,
              alpha: float = 1.0, tol: float = 1e-8) -> tuple[Tensor, MinNormResult | None]:
    """Weights ``(m,)`` (float64) of the objectives for the Gram matrix ``gram`` ``(m, m)``.

    Args:
        gram: :math:`G = J J^\\top`, symmetric positive semidefinite.
        aggregator: ``sum``, ``mgda``, ``upgrad`` or ``alpha_fair`` (see the module docs).
        preference: finite nonnegative preference over the objectives (``sum`` and
            ``upgrad``), normalised to sum 1; uniform if ``None``.
        alpha: the α of ``alpha_fair``.
        tol: certified relative gap of ``mgda``'s QP.

    Returns:
        The weights and, for ``mgda``, the QP's certified result (else ``None``).
    """
    if gram.dim() != 2 or gram.shape[0] != gram.shape[1]:
        raise InputError(f"gram: expected a square matrix, got shape {tuple(gram.shape)}")
    if not torch.isfinite(gram).all():
        raise InputError("gram: contains NaN or Inf")
    m = gram.shape[0]
    gram = 0.5 * (gram + gram.T).to(torch.float64)
    if preference is None:
        pref = gram.new_full((m,), 1.0 / m)
    else:
        pref = preference.to(gram)
        # isfinite first: NaN compares false with everything, and inf / inf is NaN.
        if pref.shape != (m,) or not bool(torch.isfinite(pref).all()) or (pref < 0).any() or float(pref.sum()) <= 0:
            raise InputError(f"preference: expected {m} finite nonnegative numbers with a positive sum")
        pref = pref / pref.sum()
    if aggregator == "sum":
        return pref, None
    if aggregator == "mgda":
        result = min_norm_weights(gram, tol=tol)
        return result.weights.to(torch.float64), result
    if aggregator == "upgrad":
        if float(gram.diagonal().max()) <= 0:
            return pref, None
        weights = _torchjd().UPGradWeighting(pref_vector=pref)(gram)
        return weights.to(torch.float64), None
    if aggregator == "alpha_fair":
        check_nonnegative("alpha", alpha)
        if float(gram.diagonal().max()) <= 0:
            return pref, None
        # Scale-free: solve on G / max diag, then normalise the weights to sum 1.
        weights = _torchjd().FairGradWeighting(alpha)(gram / gram.diagonal().max())
        weights = weights.to(torch.float64).clamp(min=0)
        total = float(weights.sum())
        return (weights / total if total > 0 else pref), None
    raise InputError(f"aggregator: unknown {aggregator!r}, expected one of {', '.join(AGGREGATORS)}")
