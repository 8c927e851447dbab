r"""Min-norm (MGDA) weights: the minimum-norm point of the convex hull of gradients.

Problem
-------
Given a symmetric positive semidefinite Gram matrix :math:`G \in \mathbb{R}^{N \times N}`
(typically :math:`G = J J^\top` with the per-objective gradients :math:`p_i` as rows of
:math:`J \in \mathbb{R}^{N \times d}`), solve

.. math::  f^\star = \min_{w \in \Delta_N} f(w) = w^\top G w, \qquad
           \Delta_N = \{w \ge 0,\ \mathbf 1^\top w = 1\},

i.e. find the point :math:`x = J^\top w` of :math:`\operatorname{conv}\{p_i\}` of least norm
(MGDA; Désidéri 2012, Sener & Koltun 2018). :math:`f^\star = 0` exactly when the origin lies in
the hull, which is the usual case when :math:`N > d`; the minimiser :math:`w` is then not unique.

Certificate
-----------
For any :math:`w \in \Delta_N` put :math:`g = G w` (so :math:`g_i = \langle p_i, x\rangle`),
:math:`f = w^\top g` and :math:`m = \min_i g_i`. For every :math:`u \in \Delta_N`, Cauchy-Schwarz
in the semi-inner product of :math:`G` gives :math:`(u^\top G u)\, f \ge (u^\top g)^2` and
:math:`u^\top g \ge m`, hence

.. math::  f^\star \ \ge\ \ell(w) = \max(m, 0)^2 / f .

This is the value of the Wolfe dual :math:`\max_y \min_i 2\langle y, p_i\rangle - \|y\|^2` at
:math:`y = (m/f)\,x`, so ``gap`` :math:`= f - \ell(w) \ge 0` is a certified duality gap:
:math:`f^\star \in [f - \text{gap}, f]`. In terms of the Frank-Wolfe gap :math:`f - m`,
``gap`` :math:`= (f-m)(f+m)/f \in [f-m,\ 2(f-m)]` when :math:`m \ge 0` and ``gap`` :math:`= f`
when :math:`m < 0`. The Frank-Wolfe gap alone does *not* bound :math:`f - f^\star` (the
linearisation only gives :math:`f^\star \ge 2m - f`): for :math:`p_1 = (1,0)`,
:math:`p_2 = (0,1)`, :math:`p_3 = (10,10)` and :math:`w = (.45, .45, .1)` one has
:math:`f = 4.205`, :math:`m = 1.45` but :math:`f^\star = 0.5 < m`. The bound only needs
:math:`G \succeq 0`.

Method
------
Wolfe's (1976) minimum-norm-point algorithm, a primal active-set method on the simplex, run on
:math:`G` alone. It keeps a *corral* :math:`S` of affinely independent points and :math:`w`
equal to the affine minimiser over :math:`S`, which is the solution of the equality-constrained
KKT system :math:`[G_{SS}\ \mathbf 1;\ \mathbf 1^\top\ 0]\,[w_S; -\mu] = [0; 1]`. Writing
:math:`A = \mathbf 1\mathbf 1^\top + G_{SS}`, the same point is :math:`w_S = z / \mathbf 1^\top z`
with :math:`A z = \mathbf 1`; :math:`A` is positive definite exactly when :math:`S` is affinely
independent, even if :math:`G_{SS}` is singular (duplicate gradients, :math:`N > d`), so no
pseudo-inverse is needed. An upper-triangular :math:`R` with :math:`R^\top R = A` is updated in
:math:`O(k^2)` when an index enters and re-triangularised by a QR of the trailing block when
indices leave.

* Major step: add the indices with the most negative :math:`g_j < f` (the most violated KKT
  conditions :math:`(Gw)_j \ge \mu = f`); the block size adapts, starting at one, which is
  Wolfe's rule and guarantees a strict decrease of :math:`f`.
* Minor step: if the new affine minimiser :math:`v` is not strictly positive, move
  :math:`w \to w + \theta (v - w)` with the largest :math:`\theta \in [0,1]` keeping
  :math:`w \ge 0`, drop the indices that reach zero, and repeat.

In exact arithmetic this terminates at the optimum after finitely many steps (no corral
repeats because :math:`f` strictly decreases between major steps). A major step costs
:math:`O(N k + k^2)` with :math:`k = |S| \le \operatorname{rank}(G) + 1`, never a full
:math:`O(N^2)` product, so :math:`N \gg d` is cheap. Unlike Frank-Wolfe with a step-size
stopping rule, the result is exact up to rounding and carries the certificate above.

:math:`G` is symmetrised and divided by :math:`\max_i G_{ii}` first, which makes the iterates
scale-invariant; the absolute stopping floor is relative to that scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["MinNormResult", "min_norm_weights", "simplex_projection"]

_F64 = torch.float64
# Absolute floor on the certified gap of the normalised problem (max_i G_ii = 1). Rounding in
# g = G w is a few ulps of the unit scale, so gaps below ~1e-15 cannot be resolved.
_ABS_GAP = 1e-14
# An index is rejected as affinely dependent on the corral when its squared distance to the
# corral's (lifted) affine hull is below this fraction of its lifted squared norm 1 + G_jj:
# adding it would make R numerically singular and the affine minimiser meaningless.
_DEPENDENT = 1e-12
# Adding many indices per major step saves iterations when the support is large, but wrong
# guesses cost minor steps; the block grows on success and shrinks on failure up to this cap.
_MAX_BLOCK = 64


@dataclass(frozen=True)
class MinNormResult:
    """Outcome of :func:`min_norm_weights`.

    Attributes:
        weights: ``(N,)`` float64 weights on the probability simplex, on the device of ``gram``.
        norm_sq: :math:`w^\\top G w`, the squared norm of the combined gradient.
        gap: certified duality gap :math:`\\ge 0`: the optimum lies in
            ``[norm_sq - gap, norm_sq]`` (see the module docstring for the bound).
        iterations: number of active-set changes (major plus minor steps).
        converged: whether the stopping test on ``gap`` was met.
    """

    weights: torch.Tensor
    norm_sq: float
    gap: float
    iterations: int
    converged: bool


def simplex_projection(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the probability simplex along the last dimension (batched).

    Solves :math:`\\min_w \\|w - v\\|^2` s.t. :math:`w \\ge 0, \\mathbf 1^\\top w = 1` in
    closed form: with :math:`u` the values sorted decreasingly, :math:`\\rho` the largest
    :math:`k` with :math:`u_k > (\\sum_{i \\le k} u_i - 1)/k` and
    :math:`\\tau = (\\sum_{i \\le \\rho} u_i - 1)/\\rho`, the projection is
    :math:`\\max(v - \\tau, 0)` (Held, Wolfe & Crowder 1974; Duchi et al. 2008).

    Args:
        v: tensor of shape ``(..., n)`` with ``n >= 1``; integer input is cast to float64.

    Returns:
        Tensor of the same shape (floating dtype of ``v``) whose last-dim slices lie on the
        simplex.

    Raises:
        ValueError: if ``v`` is 0-dimensional, has an empty last dimension or is not finite.
    """
    if v.dim() == 0 or v.shape[-1] == 0:
        raise ValueError(f"simplex_projection needs a non-empty last dimension, got {tuple(v.shape)}")
    if not v.is_floating_point():
        v = v.to(_F64)
    if not bool(torch.isfinite(v).all()):
        raise ValueError("simplex_projection input contains NaN or Inf")
    n = v.shape[-1]
    u, _ = torch.sort(v, dim=-1, descending=True)
    excess = torch.cumsum(u, dim=-1) - 1.0
    k = torch.arange(1, n + 1, device=v.device, dtype=v.dtype)
    # The test holds on a prefix mathematically; taking the largest index that passes stays
    # correct if rounding flips a late entry. k = 1 always passes, so rho >= 1.
    passes = u * k > excess
    rho = torch.where(passes, k, torch.zeros_like(k)).amax(dim=-1, keepdim=True)
    tau = excess.gather(-1, rho.long() - 1) / rho
    return torch.clamp(v - tau, min=0.0)


class _Corral:
    """Wolfe's corral: indices, their rows of G, and R with R^T R = 1 1^T + G_SS.

    ``G`` here is the normalised symmetric part ``(gram + gram^T) / (2 scale)``. It is formed
    one row at a time, so an (N, N) copy of the caller's matrix is never made: at N = 5000 a
    float64 copy is 200 MB, and freshly faulted memory dominated the run time.
    """

    def __init__(self, gram: torch.Tensor, scale: float) -> None:
        n = gram.shape[0]
        self.gram = gram
        self.factor_ = 0.5 / scale
        self.diag = gram.diagonal().to(_F64) / scale
        self.size = 0
        cap = min(n, 64)
        dev = gram.device
        self.index = torch.empty(cap, dtype=torch.long, device=dev)
        # Rows of G for the corral, so g = G w is a (k, N) product instead of an (N, N) one.
        self.rows = torch.empty(cap, n, dtype=_F64, device=dev)
        self.chol = torch.zeros(cap, cap, dtype=_F64, device=dev)

    def _grow(self) -> None:
        n = self.gram.shape[0]
        cap = min(n, 2 * self.index.shape[0])
        dev = self.gram.device
        k = self.size
        index = torch.empty(cap, dtype=torch.long, device=dev)
        index[:k] = self.index[:k]
        rows = torch.empty(cap, n, dtype=_F64, device=dev)
        rows[:k] = self.rows[:k]
        chol = torch.zeros(cap, cap, dtype=_F64, device=dev)
        chol[:k, :k] = self.chol[:k, :k]
        self.index, self.rows, self.chol = index, rows, chol

    def row(self, j: int) -> torch.Tensor:
        return (self.gram[j].to(_F64) + self.gram[:, j].to(_F64)) * self.factor_

    @property
    def members(self) -> torch.Tensor:
        return self.index[: self.size]

    def try_append(self, j: int) -> bool:
        """Add index ``j`` unless it is (numerically) affinely dependent on the corral."""
        k = self.size
        lifted = 1.0 + float(self.diag[j])
        if k == 0:
            r = None
            rho2 = lifted
        else:
            col = (1.0 + self.rows[:k, j]).unsqueeze(-1)
            r = torch.linalg.solve_triangular(self.factor().mT, col, upper=False).squeeze(-1)
            rho2 = lifted - float(r @ r)
        if not rho2 > _DEPENDENT * lifted:
            return False
        if k == self.index.shape[0]:
            self._grow()
        if r is not None:
            self.chol[:k, k] = r
        self.chol[k, :k] = 0.0
        self.chol[k, k] = math.sqrt(rho2)
        self.rows[k] = self.row(j)
        self.index[k] = j
        self.size = k + 1
        return True

    def factor(self) -> torch.Tensor:
        # solve_triangular on a strided view of the buffer is several times slower than a
        # copy plus a contiguous solve.
        return self.chol[: self.size, : self.size].contiguous()

    def affine_min(self) -> torch.Tensor:
        """Affine minimiser of w^T G w over the corral (sums to one, may have signs)."""
        k = self.size
        r = self.factor()
        ones = torch.ones(k, 1, dtype=_F64, device=r.device)
        y = torch.linalg.solve_triangular(r.mT, ones, upper=False)
        z = torch.linalg.solve_triangular(r, y, upper=True).squeeze(-1)
        return z / z.sum()

    def keep(self, mask: torch.Tensor) -> None:
        """Keep the corral positions where ``mask`` is true (order preserved)."""
        k = self.size
        kept = torch.nonzero(mask).squeeze(-1)
        removed = torch.nonzero(~mask).squeeze(-1)
        if removed.numel() == 0:
            return
        p = int(removed[0])
        tail = kept[kept > p]
        new_k = int(kept.numel())
        m = new_k - p
        chol = self.chol
        if m > 0:
            # Columns right of p keep their top block R[:p]; the rows p.. of those columns are
            # re-triangularised by QR, since (R[p:, tail])^T R[p:, tail] is the Schur complement
            # of the kept set (no squaring of the condition number as a Cholesky would).
            top = chol[:p, tail].clone()
            # geqrf + triu: torch's qr(mode="r") is an order of magnitude slower on CPU.
            block = torch.geqrf(chol[p:k, tail])[0][:m].triu()
            chol[:p, p:new_k] = top
            chol[p:new_k, p:new_k] = block
        chol[new_k:k, :k] = 0.0
        chol[:k, new_k:k] = 0.0
        if m > 0:
            self.rows[p:new_k] = self.rows[tail].clone()
            self.index[p:new_k] = self.index[tail].clone()
        self.size = new_k


def _certified_gap(f: float, m: float) -> float:
    """f - max(m, 0)^2 / f, the Wolfe-dual gap (see the module docstring)."""
    if f <= 0.0:
        return 0.0
    lower = max(m, 0.0) ** 2 / f
    return max(f - lower, 0.0)


def _measure(corral: _Corral, w: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """g = G w, f = w^T G w and the certified gap for ``w`` supported on the corral."""
    g = w @ corral.rows[: corral.size]
    f = max(float(w @ g[corral.members]), 0.0)
    return g, f, _certified_gap(f, float(g.min()))


def _done(f: float, gap: float, tol: float) -> bool:
    return gap <= tol * f or gap <= _ABS_GAP


def _minor_steps(corral: _Corral, w: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Move ``w`` to the affine minimiser of a sub-corral on which it is strictly positive."""
    steps = 0
    while True:
        v = corral.affine_min()
        if bool((v > 0).all()):
            return v, steps
        steps += 1
        nonpos = v <= 0
        # Entries with v_i <= 0 block the segment w -> v where w_i (1 - t) + t v_i hits zero;
        # w_i = v_i = 0 gives ratio 0, i.e. drop without moving.
        denom = torch.where(nonpos, w - v, torch.ones_like(w))
        ratio = torch.where(nonpos, w / torch.clamp(denom, min=torch.finfo(_F64).tiny), torch.inf)
        theta = float(torch.clamp(ratio.min(), 0.0, 1.0))
        w = w + theta * (v - w)
        drop = (nonpos & (ratio <= theta)) | (w <= 0)
        keep = ~drop
        corral.keep(keep)
        w = torch.clamp(w[keep], min=0.0)
        w = w / w.sum()


def _solve(
    gram: torch.Tensor, scale: float, start: torch.Tensor | None, tol: float, max_iter: int
) -> tuple[torch.Tensor, float, float, int, bool]:
    """Wolfe's algorithm on gram / scale; returns (w, f, gap, iterations, converged) unscaled."""
    n = gram.shape[0]
    corral = _Corral(gram, scale)
    iterations = 0
    if start is not None:
        support = torch.nonzero(start > 0).squeeze(-1)
        order = support[torch.argsort(start[support], descending=True)]
        for j in order.tolist():
            corral.try_append(j)
        w = start[corral.members]
        w, steps = _minor_steps(corral, w / w.sum())
        iterations += steps
    else:
        corral.try_append(int(torch.argmin(corral.diag)))
        w = torch.ones(1, dtype=_F64, device=gram.device)

    block = 1
    while True:
        g, f, gap = _measure(corral, w)
        if _done(f, gap, tol) or iterations >= max_iter:
            break
        k = corral.size
        outside = g.clone()
        outside[corral.members] = torch.inf
        count = min(block, n - k)
        if count <= 0:
            break
        values, cand = torch.topk(outside, count, largest=False)
        # Only clear violators of (G w)_j >= f enter; the best one always qualifies because
        # gap > 0 forces m < f.
        cand = cand[values < f].tolist()
        old = corral.members.clone()
        added = sum(corral.try_append(j) for j in cand)
        if added == 0:
            break
        w = torch.cat([w, torch.zeros(added, dtype=_F64, device=gram.device)])
        w, steps = _minor_steps(corral, w)
        iterations += 1 + steps
        survived = corral.size - int(torch.isin(corral.members, old).sum())
        if survived == 0:
            if block == 1:
                # Wolfe's single best index was rejected by rounding: no further progress.
                break
            block = 1
        elif survived == added:
            block = min(2 * block, _MAX_BLOCK)
        else:
            block = max(1, block // 2)

    # Stalled exits may have moved w by rounding; report the state actually returned.
    _, f, gap = _measure(corral, w)
    weights = torch.zeros(n, dtype=_F64, device=gram.device)
    weights[corral.members] = w
    return weights, f, gap, iterations, _done(f, gap, tol)


def min_norm_weights(
    gram: torch.Tensor,
    *,
    init: torch.Tensor | None = None,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> MinNormResult:
    """Minimum-norm convex combination weights (MGDA) for a Gram matrix of gradients.

    Solves :math:`\\min_{w \\ge 0, \\mathbf 1^\\top w = 1} w^\\top G w` by Wolfe's
    minimum-norm-point active-set algorithm; see the module docstring for the maths, the
    certificate and the method.

    Args:
        gram: symmetric PSD ``(N, N)`` matrix :math:`G` (e.g. :math:`J J^\\top`); any real dtype,
            computed in float64 on its device. Only its symmetric part is used.
        init: optional warm start (e.g. the previous step's weights); projected onto the
            simplex. Ignored if its shape is not ``(N,)`` or it is not finite.
        tol: stop when ``gap <= tol * norm_sq``, or when ``gap`` is below ``1e-14 * max_i G_ii``.
        max_iter: cap on active-set changes (major plus minor steps).

    Returns:
        :class:`MinNormResult` with ``weights`` (float64, device of ``gram``), ``norm_sq``,
        the certified ``gap`` (the optimum lies in ``[norm_sq - gap, norm_sq]``),
        ``iterations`` and ``converged``.

    Raises:
        TypeError: if ``gram`` is not a tensor.
        ValueError: if ``gram`` is not square and non-empty, not finite, complex, or has a
            negative diagonal; or if ``tol``/``max_iter`` are negative.
    """
    if not isinstance(gram, torch.Tensor):
        raise TypeError(f"gram must be a torch.Tensor, got {type(gram).__name__}")
    if gram.dim() != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f"gram must be a square (N, N) matrix, got shape {tuple(gram.shape)}")
    n = gram.shape[0]
    if n == 0:
        raise ValueError("gram must be non-empty")
    if gram.is_complex():
        raise ValueError("gram must be real")
    if not (tol >= 0.0 and math.isfinite(tol)):
        raise ValueError(f"tol must be finite and >= 0, got {tol}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    gram = gram.detach()
    # amin/amax propagate NaN and expose +-Inf without allocating an (N, N) mask.
    low, high = (float(x) for x in torch.aminmax(gram))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("gram contains NaN or Inf")
    dev = gram.device

    start: torch.Tensor | None = None
    if init is not None and tuple(init.shape) == (n,):
        candidate = init.detach().to(device=dev, dtype=_F64)
        if bool(torch.isfinite(candidate).all()):
            start = simplex_projection(candidate)

    diag = gram.diagonal().to(_F64)
    scale = float(diag.max())
    if scale <= 0.0:
        if max(-low, high) > 0.0:
            raise ValueError("gram must be positive semidefinite (its diagonal is <= 0)")
        # G = 0: every weight vector is optimal; keep the caller's if given.
        weights = start if start is not None else torch.full((n,), 1.0 / n, dtype=_F64, device=dev)
        return MinNormResult(weights, 0.0, 0.0, 0, True)
    if float(diag.min()) < -1e-8 * scale:
        raise ValueError("gram must be positive semidefinite (it has a negative diagonal entry)")
    if n == 1:
        return MinNormResult(torch.ones(1, dtype=_F64, device=dev), scale, 0.0, 0, True)

    # w^T G w only sees the symmetric part; normalising makes tolerances scale-free.
    weights, f, gap, iterations, converged = _solve(gram, scale, start, tol, max_iter)
    return MinNormResult(weights, f * scale, gap * scale, iterations, converged)
