r"""One entry point for multi-objective training: objectives, their Gram, an aggregator, a loss.

Given per-unit utilities :math:`u` (to maximise), :class:`FairnessLoss` forms the objectives
:math:`o(u) \in \mathbb{R}^m` (:mod:`._objectives`), the Gram matrix
:math:`G = J J^\top` of their gradients :math:`J = \partial o / \partial z` with respect to
``inputs`` :math:`z`, the weights :math:`c` of an aggregator (:mod:`._aggregate`), and returns
the scalar loss :math:`-\sum_i c_i\, o_i` with :math:`c` detached. Its gradient is the aggregated
direction :math:`-J_\theta^\top c`, so any optimiser loop (Lightning's automatic optimisation
included) applies the step.

``inputs`` decides which Gram is used: the parameters give the exact one (``m`` backward
passes through the model); the model's last shared representation (the power model's start
:math:`q^{(0)}`, through which every parameter gradient flows) gives the MGDA-UB surrogate
:math:`J_z J_z^\top` (Sener & Koltun 2018) at the cost of backward passes through the loss only.
For ``unit`` objectives of a batch of independent instances, ``unit_instance`` and
``input_instance`` tell which instance each unit and each input entry belong to: an objective
only depends on its own instance's inputs, so one backward pass per *rank within an instance*
recovers every row (``max_b n_b`` passes instead of :math:`N`).

With ``mgda`` the direction is rescaled to the mean gradient's norm and, at a certified
Pareto-stationary point (:math:`\|d\|^2 \le` ``stationary_rtol`` :math:`\|\bar g\|^2`), replaced
by the preference-weighted mean (see :mod:`._backprop`).

``softmin`` weighs the objectives by their values instead of their gradients,
:math:`c = \mathrm{softmax}(-o / \tau)` (tilted risk: :math:`\tau \to \infty` is the mean,
:math:`\tau \to 0` the worst objective alone; Li, Beirami, Sanjabi and Smith, "Tilted empirical
risk minimization", 2021). Gradient aggregators cannot tell an instance far from its optimum from
one at it (the gradients of :math:`u` and :math:`u - u^\star` are the same), so with a
``baseline`` (per-unit reference utilities, e.g. the exact optimum's) the objectives are the
regrets :math:`u - u^\star`, and ``softmin`` leans on the instances with the largest gaps.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import Tensor

from gnnalloc.core import InputError, check_fraction, check_nonnegative, check_positive
from gnnalloc.fairness._aggregate import AGGREGATORS, Aggregator, aggregate
from gnnalloc.fairness._objectives import (
    _entropy,
    check_fairness_term,
    efficiency_fairness,
    group_objectives,
    unit_objectives,
)
from gnnalloc.ops import segment_rank

__all__ = ["OBJECTIVES", "VALUE_AGGREGATORS", "FairnessLoss", "ObjectiveKind", "objective_jacobian"]

ObjectiveKind = Literal["unit", "instance", "group", "efficiency_fairness"]
OBJECTIVES: tuple[str, ...] = ("unit", "instance", "group", "efficiency_fairness")
#: Aggregators whose weights come from the objectives' values, not their Gram.
VALUE_AGGREGATORS: tuple[str, ...] = ("softmin",)


def _flat(grads: Sequence[Tensor | None], inputs: Sequence[Tensor]) -> Tensor:
    return torch.cat([(torch.zeros_like(x) if g is None else g).reshape(-1).to(torch.float64)
                      for g, x in zip(grads, inputs)])


def objective_jacobian(objectives: Tensor, inputs: Sequence[Tensor],
                       unit_instance: Tensor | None = None,
                       input_instance: Tensor | None = None) -> Tensor:
    """:math:`J = \\partial o / \\partial z`, ``(m, D)`` float64, ``D`` the inputs' total size.

    With ``unit_instance`` ``(m,)`` and ``input_instance`` ``(D,)`` (instance of each objective
    and of each flattened input entry; objective ``i`` must not depend on other instances'
    inputs), one backward pass per rank within an instance suffices.
    """
    inputs = list(inputs)
    m = objectives.numel()
    size = sum(x.numel() for x in inputs)
    rows = torch.zeros(m, size, dtype=torch.float64, device=objectives.device)
    if unit_instance is None or input_instance is None:
        for i in range(m):
            grads = torch.autograd.grad(objectives[i], inputs, retain_graph=True, allow_unused=True)
            rows[i] = _flat(grads, inputs)
        return rows
    if unit_instance.shape != (m,) or input_instance.shape != (size,):
        raise InputError("unit_instance, input_instance: must give one instance per objective "
                         "and per input entry")
    count = torch.bincount(unit_instance)
    rank = segment_rank(unit_instance, count.numel())
    # owner[b, r]: the objective of rank r in instance b (-1 where instance b has fewer).
    owner = torch.full((count.numel(), int(count.max()) if m else 0), -1, dtype=torch.long,
                       device=rank.device)
    owner[unit_instance, rank] = torch.arange(m, device=rank.device)
    entries = torch.arange(size, device=rows.device)
    valid_instance = input_instance < owner.shape[0]
    for r in range(owner.shape[1]):
        cotangent = (rank == r).to(objectives.dtype)
        grads = torch.autograd.grad(objectives, inputs, grad_outputs=cotangent, retain_graph=True,
                                    allow_unused=True)
        flat = _flat(grads, inputs)
        who = torch.full_like(entries, -1)
        who[valid_instance] = owner[input_instance[valid_instance], r]
        hit = who >= 0
        rows[who[hit], entries[hit]] = flat[hit]
    return rows


class FairnessLoss:
    r"""Multi-objective loss: objectives of the utilities, combined by an aggregator.

    Args:
        objectives: ``unit`` (one per user or link), ``instance`` (mean per instance of the
            batch), ``group`` (mean per given group) or ``efficiency_fairness`` (the pair
            mean utility and bottom-``share`` mean utility, per instance).
        aggregator: ``sum``, ``mgda``, ``upgrad`` or ``alpha_fair`` (:func:`aggregate`), or
            ``softmin`` (weights :math:`\mathrm{softmax}(-o / \tau)` of the values, no Gram).
        tradeoff: weight :math:`\lambda` of the fairness objective in the preference
            :math:`(1-\lambda, \lambda)` of ``efficiency_fairness`` (``sum``/``upgrad``).
        share: the bottom share of ``efficiency_fairness``.
        fairness_term: the fairness objective of ``efficiency_fairness``: ``bottom`` (the
            bottom-``share`` mean utility) or ``log`` (the mean log utility plus
            ``log_offset``, for non-negative utilities such as rates:
            :func:`~._objectives.log_mean`).
        log_offset: :math:`\epsilon` of the ``log`` term, in the utilities' units.
        alpha: the α of ``alpha_fair``.
        rescale: with ``mgda``, rescale the direction to the mean gradient's norm.
        stationary_rtol: with ``mgda``, the relative squared norm below which the point is
            Pareto-stationary (then the preference-weighted mean is used).
        temperature: :math:`\tau > 0` of ``softmin``, in the objectives' units.
    """

    def __init__(
        self, objectives: ObjectiveKind = "instance", aggregator: Aggregator = "sum",
        tradeoff: float = 0.5, share: float = 0.1, alpha: float = 1.0, rescale: bool = True,
        stationary_rtol: float = 1e-8, temperature: float = 0.1, fairness_term: str = "bottom",
        log_offset: float = 1e-3,
    ) -> None:
        if objectives not in OBJECTIVES:
            raise InputError(f"objectives: unknown {objectives!r}, expected one of {', '.join(OBJECTIVES)}")
        if aggregator not in AGGREGATORS + VALUE_AGGREGATORS:
            known = ", ".join(AGGREGATORS + VALUE_AGGREGATORS)
            raise InputError(f"aggregator: unknown {aggregator!r}, expected one of {known}")
        check_positive("temperature", temperature)
        check_fraction("tradeoff", tradeoff)
        check_positive("share", share)
        if share > 1:
            raise InputError(f"share: must be in (0, 1], got {share!r}")
        # Named checks: NaN passes a plain "< 0" test, and text raises TypeError there.
        check_nonnegative("alpha", alpha)
        check_nonnegative("stationary_rtol", stationary_rtol)
        check_fairness_term(fairness_term)
        check_positive("log_offset", log_offset)
        if fairness_term != "bottom" and objectives != "efficiency_fairness":  # else silently unused
            raise InputError(f"fairness_term: only objectives efficiency_fairness take one, got {objectives!r}")
        self.fairness_term, self.log_offset = fairness_term, float(log_offset)
        self.objectives, self.aggregator = objectives, aggregator
        self.tradeoff, self.share, self.alpha = tradeoff, share, alpha
        self.rescale, self.stationary_rtol = rescale, stationary_rtol
        self.temperature = float(temperature)

    @property
    def is_plain_sum(self) -> bool:
        """Whether the weights are the preference itself (no Gram needed)."""
        return self.aggregator == "sum"

    def objective_values(self, utility: Tensor, instance: Tensor | None = None,
                         group: Tensor | None = None) -> Tensor:
        """The objectives ``(m,)`` for utilities ``(N,)`` (to maximise)."""
        if self.objectives == "unit":
            return unit_objectives(utility)
        if self.objectives == "group":
            if group is None:
                raise InputError("group: required by objectives 'group'")
            return group_objectives(utility, group)
        if instance is None:
            instance = torch.zeros_like(utility, dtype=torch.long)
        if self.objectives == "instance":
            return group_objectives(utility, instance)
        return efficiency_fairness(utility, instance, self.share, fairness_term=self.fairness_term,
                                   log_offset=self.log_offset)

    def _preference(self, m: int, like: Tensor) -> Tensor | None:
        if self.objectives == "efficiency_fairness":
            return torch.tensor([1.0 - self.tradeoff, self.tradeoff], dtype=torch.float64, device=like.device)
        return None

    def __call__(
        self, utility: Tensor, inputs: Sequence[Tensor] = (), *, instance: Tensor | None = None,
        group: Tensor | None = None, input_instance: Tensor | None = None, baseline: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """The loss to backpropagate and this step's statistics.

        Args:
            utility: per-unit utilities ``(N,)``, attached to the graph.
            inputs: the tensors the Gram is taken over (parameters: exact; the model's last
                shared representation: MGDA-UB). Unused by ``sum``.
            instance: instance of each unit ``(N,)``.
            group: group of each unit ``(N,)`` (``group`` objectives).
            input_instance: instance of each flattened input entry, for the fast ``unit``
                Jacobian (see :func:`objective_jacobian`).
            baseline: per-unit reference utilities ``(N,)`` (e.g. the optimum's), subtracted
                before the objectives are formed: they become regrets. Gradients are unchanged;
                only value-based weights (``softmin``) and the logged values see it.
        """
        if not torch.isfinite(utility).all():
            raise InputError("utility: contains NaN or Inf")
        if baseline is not None:
            if baseline.shape != utility.shape or not torch.isfinite(baseline).all():
                raise InputError(f"baseline: expected finite numbers of shape {tuple(utility.shape)}")
            utility = utility - baseline.to(utility).detach()
        values = self.objective_values(utility, instance, group)
        m = values.numel()
        pref = self._preference(m, values)
        stats: dict[str, float] = {
            "num_objectives": float(m), "objective_mean": float(values.detach().mean()),
            "objective_min": float(values.detach().min()),
        }
        if self.aggregator in VALUE_AGGREGATORS or self.is_plain_sum or not inputs:  # no Gram needed
            if self.aggregator in VALUE_AGGREGATORS:
                weights = torch.softmax(-values.detach().to(torch.float64) / self.temperature, dim=0)
            else:
                weights, _ = aggregate(torch.zeros(m, m, dtype=torch.float64), "sum", pref)
            stats.update(weights_entropy=_entropy(weights), weights_max=float(weights.max()))
            return -(weights.to(values) * values).sum(), stats
        blocks = self.objectives == "unit" and instance is not None and input_instance is not None
        jac = objective_jacobian(values, inputs, instance if blocks else None,
                                 input_instance if blocks else None)
        gram = jac @ jac.T
        weights, result = aggregate(gram, self.aggregator, pref, self.alpha)
        norm_sq = float(weights @ gram @ weights)
        uniform = pref if pref is not None else gram.new_full((m,), 1.0 / m)
        mean_sq = max(float(uniform @ gram @ uniform), 0.0)
        stationary = 0.0
        scale = 1.0
        if self.aggregator == "mgda":
            reference = mean_sq if mean_sq > 0 else max(float(gram.diagonal().max()), 0.0)
            if norm_sq <= self.stationary_rtol * reference:
                stationary, weights, norm_sq = 1.0, uniform, mean_sq
            elif self.rescale and norm_sq > 0:
                scale = min(max(math.sqrt(mean_sq / norm_sq), 1.0), float(m))
        off = ~torch.eye(m, dtype=torch.bool, device=gram.device)
        alignment = gram @ weights  # <g_i, d>: negative = the step raises objective i's loss
        stats.update(
            weights_entropy=_entropy(weights), weights_max=float(weights.max() / weights.sum()),
            stationary=stationary, scale=scale, direction_norm_sq=norm_sq * scale * scale,
            conflicts=float((gram[off] < 0).to(torch.float64).mean()) if m > 1 else 0.0,
            descent_share=float((alignment > 0).to(torch.float64).mean()),
        )
        if result is not None:
            stats["qp_gap"] = float(result.gap)
        coefficients = (scale * weights).to(values.dtype).detach()
        return -(coefficients * values).sum(), stats
