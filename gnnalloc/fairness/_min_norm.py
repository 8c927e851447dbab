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
pseudo-inverse is needed. A candidate whose squared distance to the lifted affine hull (its
Cholesky pivot) is below :math:`10^{-14}(1 + G_{jj})` is treated as dependent and skipped.

* Major step: add the indices with the smallest :math:`g_j < f`, i.e. the most violated
  optimality conditions :math:`(Gw)_j \ge \mu = f`. The block starts at one index, Wolfe's
  rule, which guarantees a strict decrease of :math:`f`; it doubles (up to 64) while all added
  indices survive and shrinks otherwise, which matters when the support is large.
* Minor step: if the new affine minimiser :math:`v` is not strictly positive, move
  :math:`w \to w + \theta (v - w)` with the largest :math:`\theta \in [0,1]` keeping
  :math:`w \ge 0`, drop the indices that reach zero, and repeat.

In exact arithmetic this terminates at the optimum after finitely many steps (no corral
repeats because :math:`f` strictly decreases between major steps). A lower-triangular
:math:`L` with :math:`L L^\top = A` is extended by one block solve when indices enter and
updated in :math:`O(k^2)` by a closed-form rank-one update when one leaves; one step of
iterative refinement against :math:`A` keeps the KKT residual at rounding level despite the
accumulated update error. A major step costs :math:`O(N k + k^2)` with
:math:`k = |S| \le \operatorname{rank}(G) + 1`, never a full :math:`O(N^2)` product, and no
:math:`N \times N` copy of ``gram`` is made, so :math:`N \gg d` is cheap. Unlike Frank-Wolfe
with a step-size stopping rule, the result is exact up to rounding and carries the
certificate above.

:math:`G` is symmetrised and divided by :math:`\max_i G_{ii}` (row by row, as rows are
needed), which makes the iterates scale-invariant. Stopping: ``gap <= tol * norm_sq``, or
``gap <= 1e-13 * max_i G_ii`` for minima that are zero or too small for a relative test. The
CPU work runs on one intra-op thread (see ``_one_cpu_thread``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from gnnalloc.core import InputError

__all__ = ["MinNormResult", "min_norm_weights", "simplex_projection"]

_F64 = torch.float64
# Absolute gap floors for the normalised problem (max_i G_ii = 1), where the relative test
# cannot apply because norm_sq is (close to) zero. Rounding in g = G w is a few ulps of the unit
# scale, and runs without any floor stall at certified gaps of 1e-16 to 5e-15. The solver keeps
# improving while the gap exceeds _TARGET_GAP and reports convergence below _ABS_GAP, so a stall
# at rounding level still counts as converged.
_TARGET_GAP = 1e-14
_ABS_GAP = 1e-13
# An index is rejected as affinely dependent on the corral when its squared distance to the
# corral's (lifted) affine hull is below this fraction of its lifted squared norm 1 + G_jj:
# adding it would make L numerically singular and the affine minimiser meaningless. At 1e-12,
# near-collinear gradients (relative spread 1e-6) and gradients whose norms span 1e6 stalled
# short of the gap floor; at 1e-14 a random sweep of such cases converged throughout.
_DEPENDENT = 1e-14
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
        raise InputError(
            f"simplex_projection needs a non-empty last dimension, got {tuple(v.shape)}"
        )
    if not v.is_floating_point():
        v = v.to(_F64)
    if not bool(torch.isfinite(v).all()):
        raise InputError("simplex_projection input contains NaN or Inf")
    n = v.shape[-1]
    u, _ = torch.sort(v, dim=-1, descending=True)
    excess = torch.cumsum(u, dim=-1) - 1.0
    k = torch.arange(1, n + 1, device=v.device, dtype=v.dtype)
    # Mathematically the passing k form a prefix; the largest passing k is taken rather than
    # their count so that a rounding flip inside the prefix cannot shorten it. k = 1 always
    # passes, so rho >= 1.
    passes = u * k > excess
    rho = torch.where(passes, k, torch.zeros_like(k)).amax(dim=-1, keepdim=True)
    tau = excess.gather(-1, rho.long() - 1) / rho
    return torch.clamp(v - tau, min=0.0)


class _Corral:
    """Wolfe's corral: indices, their rows of G, and L with L L^T = 1 1^T + G_SS.

    ``G`` here is the normalised symmetric part ``(gram + gram^T) / (2 scale)``. It is formed
    one row at a time, so an (N, N) copy of the caller's matrix is never made: at N = 5000 a
    float64 copy is 200 MB, and freshly faulted memory dominated the run time.

    Positions (the order of ``index`` and of the factor ``low``) follow insertion order. The
    rows of G live in ``rows`` at ``slot[position]``, so removing a member moves one row
    instead of shifting all later ones. The strict upper triangle of ``low[:size, :size]`` is
    kept exactly zero.
    """

    def __init__(self, gram: torch.Tensor, scale: float) -> None:
        n = gram.shape[0]
        self.gram = gram
        self.scale = scale
        self.diag = gram.diagonal().to(_F64) / scale
        self.size = 0
        self._allocate(min(n, 64))

    def _allocate(self, cap: int) -> None:
        dev = self.gram.device
        k = self.size
        index = torch.empty(cap, dtype=torch.long, device=dev)
        slot = torch.empty(cap, dtype=torch.long, device=dev)
        # Rows of G for the corral, so g = G w is a (k, N) product instead of an (N, N) one.
        rows = torch.empty(cap, self.gram.shape[0], dtype=_F64, device=dev)
        low = torch.zeros(cap, cap, dtype=_F64, device=dev)
        # G_SS in position order, for the refinement residual (gathering it from ``rows`` at
        # every solve was the most expensive step of a solve).
        gss = torch.empty(cap, cap, dtype=_F64, device=dev)
        if k:
            index[:k] = self.index[:k]
            slot[:k] = self.slot[:k]
            rows[:k] = self.rows[:k]
            low[:k, :k] = self.low[:k, :k]
            gss[:k, :k] = self.gss[:k, :k]
        self.index, self.slot, self.rows, self.low, self.gss = index, slot, rows, low, gss

    def rows_of(self, idx: torch.Tensor) -> torch.Tensor:
        # Halve before adding and divide rather than multiply by 0.5 / scale: entries near the
        # float64 limits would otherwise overflow (sum, or reciprocal of a subnormal scale).
        upper = 0.5 * self.gram[idx].to(_F64)
        lower = 0.5 * self.gram[:, idx].mT.to(_F64)
        return (upper + lower) / self.scale

    @property
    def members(self) -> torch.Tensor:
        return self.index[: self.size]

    def combine(self, w: torch.Tensor) -> torch.Tensor:
        """G w for weights ``w`` given by position."""
        k = self.size
        by_slot = torch.empty_like(w)
        by_slot[self.slot[:k]] = w
        return by_slot @ self.rows[:k]

    def factor(self) -> torch.Tensor:
        # solve_triangular on a strided view of the buffer is slower than a copy plus a
        # contiguous solve (it copies internally, sometimes very slowly).
        return self.low[: self.size, : self.size].contiguous()

    def affine_min(self) -> torch.Tensor:
        """Affine minimiser of w^T G w over the corral (sums to one, may have signs)."""
        k = self.size
        low = self.factor()
        ones = torch.ones(k, 1, dtype=_F64, device=low.device)
        z = _cholesky_solve(low, ones)
        # One step of iterative refinement against the exact A = 1 1^T + G_SS. The updated
        # factor carries a backward error of a few ulps per modification; the KKT residual of
        # z (hence the attainable gap) is proportional to it, and refinement brings it back to
        # rounding level as long as cond(A) times that error is below one.
        residual = ones - (z.sum() + self.gss[:k, :k] @ z)
        z = (z + _cholesky_solve(low, residual)).squeeze(-1)
        return z / z.sum()

    def append(self, candidates: list[int]) -> int:
        """Add ``candidates`` in order, skipping any (numerically) affinely dependent one.

        All candidates share one triangular solve against the current factor; their mutual
        block is the Schur complement ``C``, whose Cholesky pivots are exactly the squared
        lifted distances of each candidate to the corral plus the candidates before it.
        Returns the number added.
        """
        k = self.size
        dev = self.gram.device
        idx = torch.tensor(candidates, dtype=torch.long, device=dev)
        new_rows = self.rows_of(idx)
        lifted = 1.0 + new_rows[:, idx]
        if k > 0:
            cross = 1.0 + new_rows[:, self.members].mT
            x = torch.linalg.solve_triangular(self.factor(), cross, upper=False)
            schur = lifted - x.mT @ x
        else:
            x = torch.empty(0, len(candidates), dtype=_F64, device=dev)
            schur = lifted
        floor = _DEPENDENT * lifted.diagonal()
        block, info = torch.linalg.cholesky_ex(schur)
        if int(info) == 0 and bool((block.diagonal() ** 2 > floor).all()):
            keep = torch.arange(len(candidates), device=dev)
        else:
            keep, block = _greedy_cholesky(schur, floor)
        added = int(keep.numel())
        if added == 0:
            return 0
        end = k + added
        if end > self.index.shape[0]:
            self._allocate(min(self.gram.shape[0], max(end, 2 * self.index.shape[0])))
        self.low[k:end, :k] = x[:, keep].mT
        self.low[:k, k:end] = 0.0
        self.low[k:end, k:end] = block
        fresh = new_rows[keep]
        self.gss[k:end, :k] = fresh[:, self.members]
        self.gss[:k, k:end] = self.gss[k:end, :k].mT
        self.gss[k:end, k:end] = fresh[:, idx[keep]]
        self.rows[k:end] = fresh
        self.slot[k:end] = torch.arange(k, end, device=dev)
        self.index[k:end] = idx[keep]
        self.size = end
        return added

    def keep(self, mask: torch.Tensor) -> None:
        """Keep the corral positions where ``mask`` is true (order preserved)."""
        # Highest first, so the positions still to remove are not shifted.
        for p in torch.nonzero(~mask).squeeze(-1).flip(0).tolist():
            self._remove(p)

    def _remove(self, p: int) -> None:
        """Delete position ``p``: a rank-one update of the trailing block of L.

        Without row p, rows p+1.. of L are still triangular except for the column ``r`` that
        row p's column leaves behind, so the trailing factor T (lower) must become T' with
        T' T'^T = T T^T + r r^T = T (I + s s^T) T^T, where T s = r. The Cholesky factor of
        I + s s^T is known in closed form: with t_j = 1 + sum_{i<=j} s_i^2 it is
        K = D + strictly-lower(s a^T) with D_j = sqrt(t_j / t_{j-1}), a_j = s_j / sqrt(t_j t_{j-1}).
        So T' = T K, whose column j is sqrt(t_{j-1} / t_j) T_j + a_j sum_{l>=j} s_l T_l (suffix
        sums), an O(m^2) update instead of an O(m^3) refactorisation. It is a positive update,
        for which this recurrence is stable, and no subtraction occurs in t or D.
        """
        k = self.size
        m = k - p - 1
        low = self.low
        if m > 0:
            trail = low[p + 1 : k, p + 1 : k].contiguous()
            r = low[p + 1 : k, p]
            s = torch.linalg.solve_triangular(trail, r.unsqueeze(-1), upper=False).squeeze(-1)
            t = 1.0 + torch.cumsum(s * s, dim=0)
            t_prev = torch.cat([t.new_ones(1), t[:-1]])
            # Reversed cumulative sums along rows give sum_{l >= j} s_l T_il; they are exact
            # zeros above the diagonal because T is, so T' stays exactly lower triangular.
            suffix = torch.flip(torch.flip(trail * s, (1,)).cumsum_(1), (1,))
            suffix *= s / torch.sqrt(t * t_prev)
            suffix.addcmul_(trail, torch.sqrt(t_prev / t))
            low[p : k - 1, :p] = low[p + 1 : k, :p].clone()
            low[p : k - 1, p : k - 1] = suffix
            # Columns p.. of the rows above p were zero and stay zero.
            gss = self.gss
            gss[p : k - 1, :k] = gss[p + 1 : k, :k].clone()
            gss[: k - 1, p : k - 1] = gss[: k - 1, p + 1 : k].clone()
        last = k - 1
        freed = int(self.slot[p])
        if freed != last:
            mover = int(torch.nonzero(self.slot[:k] == last)[0, 0])
            self.rows[freed] = self.rows[last]
            self.slot[mover] = freed
        self.slot[p:last] = self.slot[p + 1 : k].clone()
        self.index[p:last] = self.index[p + 1 : k].clone()
        self.size = last


def _cholesky_solve(low: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    # Two triangular solves: torch.cholesky_solve is much slower on CPU for large k.
    y = torch.linalg.solve_triangular(low, rhs, upper=False)
    return torch.linalg.solve_triangular(low.mT, y, upper=True)


def _greedy_cholesky(schur: torch.Tensor, floor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky of ``schur`` in order, skipping rows whose pivot^2 is below ``floor``.

    Returns the kept positions and the lower factor of ``schur[keep][:, keep]``.
    """
    size = schur.shape[0]
    factor = torch.zeros(size, size, dtype=_F64, device=schur.device)
    keep: list[int] = []
    for i in range(size):
        a = len(keep)
        if a:
            t = torch.linalg.solve_triangular(
                factor[:a, :a], schur[keep, i].unsqueeze(-1), upper=False
            ).squeeze(-1)
            pivot2 = float(schur[i, i] - t @ t)
        else:
            t = None
            pivot2 = float(schur[i, i])
        if not pivot2 > float(floor[i]):
            continue
        if t is not None:
            factor[a, :a] = t
        factor[a, a] = math.sqrt(pivot2)
        keep.append(i)
    a = len(keep)
    return torch.tensor(keep, dtype=torch.long, device=schur.device), factor[:a, :a]


def _certified_gap(f: float, m: float) -> float:
    """f - max(m, 0)^2 / f, the Wolfe-dual gap (see the module docstring)."""
    if f <= 0.0:
        return 0.0
    lower = max(m, 0.0) ** 2 / f
    return max(f - lower, 0.0)


def _measure(corral: _Corral, w: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """g = G w, f = w^T G w and the certified gap for ``w`` supported on the corral."""
    g = corral.combine(w)
    f = max(float(w @ g[corral.members]), 0.0)
    return g, f, _certified_gap(f, float(g.min()))


def _done(f: float, gap: float, tol: float, floor: float = _ABS_GAP) -> bool:
    return gap <= tol * f or gap <= floor


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
        # Only blocking entries leave; a fresh index (w_i = 0) with v_i > 0 must stay even when
        # theta = 0, or a batch would lose its good candidates with its bad ones.
        keep = ~(nonpos & ((ratio <= theta) | (w <= 0)))
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
        # Chunks keep the candidate block small when the start is dense (e.g. uniform).
        for chunk in order.split(_MAX_BLOCK):
            corral.append(chunk.tolist())
        w = start[corral.members]
        w, steps = _minor_steps(corral, w / w.sum())
        iterations += steps
    else:
        corral.append([int(torch.argmin(corral.diag))])
        w = torch.ones(1, dtype=_F64, device=gram.device)

    block = 1
    while True:
        g, f, gap = _measure(corral, w)
        if _done(f, gap, tol, _TARGET_GAP) or iterations >= max_iter:
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
        added = corral.append(cand) if cand else 0
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


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the solver's CPU work on one intra-op thread, restoring the setting afterwards.

    The method is a long chain of small, memory-bound ops: a second thread gains nothing on an
    idle machine, but when the cores are shared every parallel region waits for a descheduled
    worker, which makes solves several times slower and erratic (``benchmarks/RESULTS.md``).
    The setting is process-wide, so concurrent torch work in other Python threads
    also runs single-threaded during the solve.
    """
    previous = torch.get_num_threads()
    if device.type != "cpu" or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
        tol: relative tolerance: converged when ``gap <= tol * norm_sq``, or, for a (nearly)
            zero minimum, when ``gap <= 1e-13 * max_i G_ii`` (the solver keeps improving down
            to ``1e-14 * max_i G_ii`` while it can).
        max_iter: cap on active-set changes (major plus minor steps), checked before each
            major step.

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
        raise InputError(f"gram must be a square (N, N) matrix, got shape {tuple(gram.shape)}")
    n = gram.shape[0]
    if n == 0:
        raise InputError("gram must be non-empty")
    if gram.is_complex():
        raise InputError("gram must be real")
    if not (tol >= 0.0 and math.isfinite(tol)):
        raise InputError(f"tol must be finite and >= 0, got {tol}")
    if max_iter < 0:
        raise InputError(f"max_iter must be >= 0, got {max_iter}")
    gram = gram.detach()
    # amin/amax propagate NaN and expose +-Inf without allocating an (N, N) mask.
    low, high = (float(x) for x in torch.aminmax(gram))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError("gram contains NaN or Inf")
    dev = gram.device

    start: torch.Tensor | None = None
    if init is not None and tuple(init.shape) == (n,):
        candidate = init.detach().to(device=dev, dtype=_F64)
        if bool(torch.isfinite(candidate).all()):
            total = float(candidate.sum())
            if bool((candidate >= 0).all()) and total > 0.0:
                # Rescaling keeps the exact zeros of a previous solution; projecting would shift
                # them by rounding to ~1e-19 and put every index in the starting corral.
                start = candidate / total
            else:
                start = simplex_projection(candidate)

    diag = gram.diagonal().to(_F64)
    scale = float(diag.max())
    if scale <= 0.0:
        if max(-low, high) > 0.0:
            raise InputError("gram must be positive semidefinite (its diagonal is <= 0)")
        # G = 0: every weight vector is optimal; keep the caller's if given.
        weights = start if start is not None else torch.full((n,), 1.0 / n, dtype=_F64, device=dev)
        return MinNormResult(weights, 0.0, 0.0, 0, True)
    if float(diag.min()) < -1e-8 * scale:
        raise InputError("gram must be positive semidefinite (it has a negative diagonal entry)")
    if n == 1:
        return MinNormResult(torch.ones(1, dtype=_F64, device=dev), scale, 0.0, 0, True)

    # w^T G w only sees the symmetric part; normalising makes tolerances scale-free.
    with _one_cpu_thread(dev):
        weights, f, gap, iterations, converged = _solve(gram, scale, start, tol, max_iter)
    return MinNormResult(weights, f * scale, gap * scale, iterations, converged)
