r"""Fairness backpropagation: combine per-user gradients by the min-norm (MGDA) weights.

With one loss :math:`L_i` per user, a step along :math:`d = \sum_i w_i \nabla L_i` where

.. math::  w = \arg\min_{w \in \Delta_N} \Big\| \sum_i w_i \nabla L_i \Big\|^2 = \arg\min_{w \in \Delta_N} w^\top G w

is a common descent direction: :math:`\langle \nabla L_j, d\rangle \ge \|d\|^2 > 0` for every user
:math:`j` (the min-norm point's optimality condition), so a small enough step lowers every loss
at once whenever :math:`d \ne 0` (Désidéri 2012; Sener & Koltun 2018). A plain sum instead steps
along :math:`\sum_i \nabla L_i`, which may raise some users' losses to lower the total.

Gram modes:

* ``exact``: :math:`G = J J^\top` with :math:`J` the per-user gradients of all shared parameters
  (the definition; :math:`N` backward passes, memory :math:`N \times d`).
* ``output``: the MGDA-UB idea. :math:`G_{ij} = \langle \nabla_z L_i, \nabla_z L_j \rangle` for the
  model's raw decisions :math:`z` (the last shared representation before the projection), then one
  weighted backward pass :math:`\sum_i w_i L_i`. Each user's loss depends only on its own projected
  decisions :math:`(x, y)`, so one backward of :math:`\sum_i L_i` gives every
  :math:`e_i = \nabla_{(x,y)} L_i` at once (disjoint supports), and
  :math:`\nabla_z L_i = M^\top e_i` with :math:`M` the projection's Jacobian. That Jacobian is
  an orthogonal projector (symmetric, idempotent) almost everywhere, so
  :math:`G_{ij} = \langle M e_i, M e_j \rangle = \langle M e_i, e_j\rangle`: only :math:`M e_i` for
  each user is needed, computed in blocks by the projection's batched vector-Jacobian product.
  Cost: the blocks of :math:`M e_i` plus one extra backward, never the encoder's Jacobian.
  When a further differentiable map :math:`R` sits between the projection and the losses (the
  allocator's home refill), :math:`\nabla_z L_i = M R^\top e_i =: M a_i` and
  :math:`G_{ij} = \langle M a_i, a_j \rangle`; the :math:`a_i` (``inner``, batched) are then
  kept densely, :math:`N \times P` numbers.
* ``sum``: the baseline, :math:`w_i = 1/N`.

Vanishing steps: with thousands of users the min-norm vector is often tiny (the hull of
gradients nearly contains the origin), which would stall training. The combined direction is
rescaled to the norm of the mean gradient :math:`\bar g = \frac1N \sum_i \nabla L_i`, i.e. by
:math:`s = \|\bar g\| / \|d\|` clipped to :math:`[1, s_{max}]` (``max_scale``, default :math:`N`).
The direction, and hence the every-user-descends property, is unchanged; only its length is.

Pareto-stationary points: when :math:`d = 0` (certified: :math:`\|d\|^2 \le` ``stationary_rtol``
:math:`\cdot \|\bar g\|^2`) no step can lower every user's loss. This is the rule, not the
exception, once an allocation uses every server's full capacity: any reallocation is zero-sum, and
with :math:`w_i \propto 1/|\partial L_i/\partial X_i|` the projected gradients cancel exactly.
``stationary="sum"`` (default) then steps along the mean gradient, i.e. the sum of the users'
log utilities, which selects among Pareto-optimal allocations by proportional fairness (the Nash
bargaining solution for :math:`\alpha = 1`); ``stationary="stop"`` takes no step, the textbook
MGDA behaviour. ``FairStepStats.stationary`` records which case occurred.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from gnnalloc.core import InputError
from gnnalloc.fairness._min_norm import min_norm_weights
from gnnalloc.fairness._objectives import _entropy

__all__ = ["FairBackward", "FairStepStats", "GramMode", "Pullback", "loss_decrease_share"]

GramMode = Literal["output", "exact", "sum"]
Pullback = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""Maps batched cotangents at the projected decisions ``(K, P), (K, U)`` to the raw decisions."""


@dataclass(frozen=True)
class FairStepStats:
    """What one fairness-backprop step did (all floats, ready for a logger).

    Args:
        weights_entropy: entropy of the weights divided by ``log N`` (1 = uniform, 0 = one user).
        weights_max: largest weight.
        min_norm_sq: :math:`w^\\top G w`, the squared norm of the combined direction.
        qp_gap: certified duality gap of the min-norm QP.
        scale: the vanishing-step rescaling factor applied.
        num_objectives: number of users :math:`N`.
        stationary: 1.0 if the point was Pareto-stationary (min-norm direction zero), else 0.0.
    """

    weights_entropy: float
    weights_max: float
    min_norm_sq: float
    qp_gap: float
    scale: float
    num_objectives: int
    stationary: float = 0.0

    def as_dict(self, prefix: str = "fair/") -> dict[str, float]:
        return {prefix + k: float(v) for k, v in asdict(self).items()}


def loss_decrease_share(before: Tensor, after: Tensor, rtol: float = 1e-9) -> float:
    """Share of users whose loss went strictly down (beyond round-off) between two evaluations."""
    scale = before.abs().clamp(min=1.0)
    return float(((after - before) < -rtol * scale).to(torch.float64).mean())


class FairBackward:
    r"""Compute parameter gradients from per-user losses by fairness backpropagation.

    Args:
        mode: ``"output"`` (default, scales), ``"exact"`` (reference) or ``"sum"`` (baseline).
        rescale: rescale the min-norm direction to the mean gradient's norm (see module docs).
        max_scale: upper bound on that factor; default ``N``.
        qp_tol: relative certified-gap tolerance of the min-norm QP.
        block_size: users per batched vector-Jacobian product in ``output`` mode.
        stationary: ``"sum"`` or ``"stop"``: what to do at a Pareto-stationary point.
        stationary_rtol: :math:`\|d\|^2 / \|\bar g\|^2` below which the point is stationary.
    """

    def __init__(
        self,
        mode: GramMode = "output",
        *,
        rescale: bool = True,
        max_scale: float | None = None,
        qp_tol: float = 1e-8,
        block_size: int = 256,
        stationary: Literal["sum", "stop"] = "sum",
        stationary_rtol: float = 1e-8,
    ) -> None:
        if mode not in ("output", "exact", "sum"):
            raise InputError(f"mode: unknown {mode!r}, expected 'output', 'exact' or 'sum'")
        if block_size < 1:
            raise InputError(f"block_size: must be >= 1, got {block_size!r}")
        self.mode = mode
        self.rescale = rescale
        self.max_scale = max_scale
        self.qp_tol = qp_tol
        if stationary not in ("sum", "stop"):
            raise InputError(f"stationary: expected 'sum' or 'stop', got {stationary!r}")
        self.block_size = block_size
        self.stationary = stationary
        self.stationary_rtol = stationary_rtol
        self._previous: Tensor | None = None

    # ----------------------------------------------------------------- Gram
    def output_gram(
        self,
        losses: Tensor,
        compute: Tensor,
        bandwidth: Tensor,
        pair_user: Tensor,
        pullback: Pullback | None,
        inner: Pullback | None = None,
    ) -> Tensor:
        """:math:`G_{ij} = \\langle \\nabla_z L_i, \\nabla_z L_j\\rangle` over the raw decisions."""
        n = losses.numel()
        # A decision that does not depend on the parameters (e.g. water-filled bandwidth) still
        # shapes each user's loss but contributes no direction: its cotangent is zero.
        inputs = [t for t in (compute, bandwidth) if t.requires_grad]
        grads = iter(
            torch.autograd.grad(losses.sum(), inputs, retain_graph=True, allow_unused=True)
            if inputs
            else ()
        )
        grad_x = next(grads) if compute.requires_grad else None
        grad_y = next(grads) if bandwidth.requires_grad else None
        grad_x = torch.zeros_like(compute) if grad_x is None else grad_x.detach()
        grad_y = torch.zeros_like(bandwidth) if grad_y is None else grad_y.detach()
        dtype = torch.float64
        gram = torch.zeros(n, n, dtype=dtype, device=losses.device)
        users = torch.arange(n, device=losses.device)

        def own_gradients(start: int, k: int) -> tuple[Tensor, Tensor]:
            # Row r holds e_{start + r}: user start + r's own gradient entries.
            cot_x = grad_x.new_zeros(k, grad_x.numel())
            in_block = (pair_user >= start) & (pair_user < start + k)
            pairs = torch.nonzero(in_block, as_tuple=True)[0]
            cot_x[pair_user[pairs] - start, pairs] = grad_x[pairs]
            cot_y = grad_y.new_zeros(k, grad_y.numel())
            cot_y[torch.arange(k, device=losses.device), users[start : start + k]] = grad_y[start : start + k]
            return cot_x, cot_y

        starts = range(0, n, self.block_size)
        if inner is not None:
            # a_i = R^T e_i for every user, kept densely: G_ij = <M a_i, a_j>.
            blocks = [inner(*own_gradients(s, min(self.block_size, n - s))) for s in starts]
            all_x = torch.cat([b[0] for b in blocks]).to(dtype)
            all_y = torch.cat([b[1] for b in blocks]).to(dtype)
            for (a_x, a_y), start in zip(blocks, starts):
                rows_x, rows_y = (a_x, a_y) if pullback is None else pullback(a_x, a_y)
                gram[start : start + a_x.shape[0]] = rows_x.to(dtype) @ all_x.T + rows_y.to(dtype) @ all_y.T
            return 0.5 * (gram + gram.T)
        for start in starts:
            k = min(self.block_size, n - start)
            cot_x, cot_y = own_gradients(start, k)
            if pullback is None:
                rows_x, rows_y = cot_x, cot_y
            else:
                rows_x, rows_y = pullback(cot_x, cot_y)
            # <M e_i, e_j>: gather row i's entries on user j's coordinates.
            per_user = rows_x.new_zeros(k, n).index_add(1, pair_user, rows_x * grad_x)
            per_user = per_user + rows_y * grad_y
            gram[start : start + k] = per_user.to(dtype)
        return 0.5 * (gram + gram.T)

    @staticmethod
    def _per_user_jacobian(losses: Tensor, params: Sequence[Tensor]) -> Tensor:
        rows = []
        for i in range(losses.numel()):
            grads = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
            rows.append(
                torch.cat(
                    [
                        (torch.zeros_like(p) if g is None else g).reshape(-1)
                        for p, g in zip(params, grads)
                    ]
                )
            )
        return torch.stack(rows).to(torch.float64)

    # ----------------------------------------------------------------- step
    def __call__(
        self,
        losses: Tensor,
        params: Sequence[Tensor],
        *,
        compute: Tensor | None = None,
        bandwidth: Tensor | None = None,
        pair_user: Tensor | None = None,
        pullback: Pullback | None = None,
        inner: Pullback | None = None,
        backward: Callable[[Tensor], None] | None = None,
    ) -> FairStepStats:
        """Accumulate the fairness-backprop direction into ``p.grad`` for ``p`` in ``params``.

        Args:
            losses: per-user losses ``(N,)``, attached to the graph.
            params: shared parameters (those receiving gradients).
            compute, bandwidth: projected decisions the losses were computed from (``output``).
            pair_user: user of each entry of ``compute`` (``output``).
            pullback: the projection's batched vector-Jacobian product (``output``); ``None``
                when the raw decisions are the projected ones.
            inner: a batched vector-Jacobian product applied before ``pullback``, from the decisions
                the losses see to the projected ones, when a map sits between them (``output``).
            backward: how to backpropagate a scalar (default ``Tensor.backward``; Lightning
                passes ``manual_backward`` so DDP and precision plugins see it).
        """
        backward = backward or (lambda t: t.backward())
        params = [p for p in params if p.requires_grad]
        n = losses.numel()
        if n == 0:
            return FairStepStats(1.0, 0.0, 0.0, 0.0, 1.0, 0)
        if not torch.isfinite(losses).all():
            raise InputError("losses: contain NaN or Inf")
        if self.mode == "sum":
            backward(losses.mean())
            return FairStepStats(1.0, 1.0 / n, float("nan"), 0.0, 1.0, n)

        if self.mode == "exact":
            jacobian = self._per_user_jacobian(losses, params)
            gram = jacobian @ jacobian.T
        else:
            if compute is None or bandwidth is None or pair_user is None:
                raise InputError("compute, bandwidth, pair_user: required in 'output' mode")
            gram = self.output_gram(losses, compute, bandwidth, pair_user, pullback, inner)

        init = self._previous if self._previous is not None and self._previous.numel() == n else None
        result = min_norm_weights(gram, init=init, tol=self.qp_tol)
        weights = result.weights
        self._previous = weights
        mean_sq = max(float(gram.sum()) / (n * n), 0.0)
        # Relative to the mean gradient, or, where that vanishes (opposite or zero gradients,
        # themselves stationary), to the largest single gradient.
        reference = mean_sq if mean_sq > 0 else max(float(gram.diagonal().max()), 0.0) if n else 0.0
        is_stationary = result.norm_sq <= self.stationary_rtol * reference
        scale = 1.0
        if is_stationary:
            if self.stationary == "sum":
                weights = torch.full_like(weights, 1.0 / n)
            else:
                scale = 0.0
        elif self.rescale and result.norm_sq > 0:
            max_scale = float(n if self.max_scale is None else self.max_scale)
            scale = min(max(math.sqrt(mean_sq / result.norm_sq), 1.0), max_scale)
        coefficients = (scale * weights).to(losses.dtype)
        if self.mode == "exact":
            direction = (coefficients.to(torch.float64) @ jacobian)
            offset = 0
            for p in params:
                size = p.numel()
                g = direction[offset : offset + size].view_as(p).to(p.dtype)
                p.grad = g.clone() if p.grad is None else p.grad + g
                offset += size
        else:
            backward((coefficients.detach() * losses).sum())
        return FairStepStats(
            weights_entropy=_entropy(result.weights),
            weights_max=float(result.weights.max()),
            min_norm_sq=float(result.norm_sq),
            qp_gap=float(result.gap),
            scale=float(scale),
            num_objectives=n,
            stationary=float(is_stationary),
        )
