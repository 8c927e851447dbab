"""Tests for the min-norm (MGDA) QP solver.

References are independent solvers (cvxpy + Clarabel at tight tolerances, quadprog's dual
active-set method on a ridged positive definite Gram matrix), closed forms, and the KKT
conditions checked directly. Gradient matrices are scaled so that max_i G_ii is about 1, which
makes the absolute tolerances below meaningful.
"""

from __future__ import annotations

import time

import cvxpy as cp
import numpy as np
import pytest
import quadprog
import torch

from gnnalloc.fairness._min_norm import MinNormResult, min_norm_weights, simplex_projection

F64 = torch.float64


def _gradients(n: int, d: int, shift: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=gen, dtype=F64) + shift) / d**0.5


def _clarabel_min_norm(jac: torch.Tensor) -> float:
    w = cp.Variable(jac.shape[0])
    problem = cp.Problem(cp.Minimize(cp.sum_squares(jac.numpy().T @ w)), [w >= 0, cp.sum(w) == 1])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert problem.status == cp.OPTIMAL
    return float(problem.value)


def _quadprog_min_norm(gram: torch.Tensor) -> np.ndarray:
    n = gram.shape[0]
    # quadprog: min 1/2 x^T G x - a^T x  s.t.  C^T x >= b, the first meq rows as equalities.
    constraints = np.hstack([np.ones((n, 1)), np.eye(n)])
    bounds = np.concatenate([[1.0], np.zeros(n)])
    return quadprog.solve_qp(gram.numpy(), np.zeros(n), constraints, bounds, 1)[0]


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    # torch.testing.assert_close would import torch.distributed on first use (~2 s).
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    assert float((actual - expected).abs().max()) <= atol


def _assert_on_simplex(w: torch.Tensor, n: int) -> None:
    assert w.shape == (n,)
    assert w.dtype == F64
    assert float(w.min()) >= 0.0
    assert abs(float(w.sum()) - 1.0) <= 1e-9


def _frank_wolfe_mgda(
    gram: torch.Tensor, min_step: float = 1e-3
) -> tuple[torch.Tensor, float, int]:
    """Plain Frank-Wolfe with exact line search and the classic MGDA stopping rule.

    This mirrors the usual MGDA implementation (Sener & Koltun 2018): start at a vertex, move
    towards the vertex with the smallest (G w)_i by the exact line-search step, and stop as
    soon as that step is below ``min_step``. The step size shrinks long before the iterate is
    accurate, so the rule stops far from the optimum; it is kept here only as the baseline the
    solver must beat.
    """
    n = gram.shape[0]
    i = int(torch.argmin(gram.diagonal()))
    w = torch.zeros(n, dtype=F64)
    w[i] = 1.0
    gw = gram[:, i].clone()
    for it in range(100_000):
        t = int(torch.argmin(gw))
        a, b, c = float(w @ gw), float(gw[t]), float(gram[t, t])
        curvature = a - 2.0 * b + c
        gamma = min(max((a - b) / curvature, 0.0), 1.0) if curvature > 0 else 0.0
        if gamma < min_step:
            return w, float(w @ gram @ w), it
        w = (1.0 - gamma) * w
        w[t] += gamma
        gw = (1.0 - gamma) * gw + gamma * gram[:, t]
    return w, float(w @ gram @ w), it


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("n", [2, 5, 32, 128, 256])
@pytest.mark.parametrize("regime", ["d<N", "d>N"])
@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_agrees_with_clarabel(n: int, regime: str, shift: float) -> None:
    d = max(1, n // 3) if regime == "d<N" else 2 * n + 3
    jac = _gradients(n, d, shift, seed=1000 * n + d)
    gram = jac @ jac.T
    res = min_norm_weights(gram)
    reference = _clarabel_min_norm(jac)

    assert isinstance(res, MinNormResult)
    assert res.converged
    _assert_on_simplex(res.weights, n)
    attained = float(res.weights @ gram @ res.weights)
    assert res.norm_sq == pytest.approx(attained, rel=1e-9, abs=1e-14)
    if reference > 1e-9:
        assert res.norm_sq == pytest.approx(reference, rel=1e-6)
    else:
        # The hull contains the origin (Clarabel reports ~1e-20): the minimum is zero.
        assert res.norm_sq <= 1e-12
    # The certified interval must contain the independent optimum.
    assert res.norm_sq - res.gap - 1e-12 <= reference <= res.norm_sq + 1e-12


@pytest.mark.parametrize("n", [2, 5, 32, 128, 256])
@pytest.mark.parametrize("regime", ["d<N", "d>N"])
def test_agrees_with_quadprog_on_positive_definite_gram(n: int, regime: str) -> None:
    d = max(1, n // 3) if regime == "d<N" else 2 * n + 3
    jac = _gradients(n, d, 0.3, seed=7 * n + d)
    # quadprog needs G > 0; the ridge also makes the minimiser unique, so weights are compared.
    gram = jac @ jac.T + 1e-4 * torch.eye(n, dtype=F64)
    res = min_norm_weights(gram)
    w_ref = torch.from_numpy(_quadprog_min_norm(gram))
    reference = float(w_ref @ gram @ w_ref)

    assert res.converged
    _assert_on_simplex(res.weights, n)
    assert res.norm_sq == pytest.approx(reference, rel=1e-6)
    assert res.norm_sq <= reference * (1 + 1e-9)
    _assert_close(res.weights, w_ref, 1e-6)


def test_orthogonal_gradients_closed_form() -> None:
    # Points s_i e_i: w_i proportional to 1 / s_i^2 and f* = 1 / sum_i s_i^-2.
    s = torch.logspace(-1, 1, 40, dtype=F64)
    res = min_norm_weights(torch.diag(s**2))
    expected = (1 / s**2) / (1 / s**2).sum()
    assert res.converged
    assert res.norm_sq == pytest.approx(float(1 / (1 / s**2).sum()), rel=1e-10)
    _assert_close(res.weights, expected, 1e-10)


# --------------------------------------------------------------------------- large N


def test_large_n_tiny_min_norm_is_exact_where_frank_wolfe_stalls() -> None:
    """N = 2000 gradients in R^300: a common component 1e-3 c plus noise orthogonal to c.

    The noise part of the hull contains the origin (2000 points in 299 dimensions), and every
    point has the same component along c, so the minimum norm point is exactly 1e-3 c and
    f* = 1e-6: tiny but non-zero, with a degenerate (non-unique) minimiser over a large
    support. This is where plain Frank-Wolfe with the MGDA step-size rule is known to stop
    orders of magnitude above the optimum.
    """
    n, d, amplitude = 2000, 300, 1e-3
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(d, generator=gen, dtype=F64)
    c /= c.norm()
    noise = torch.randn(n, d, generator=gen, dtype=F64) / d**0.5
    noise -= torch.outer(noise @ c, c)
    jac = amplitude * c + noise
    gram = jac @ jac.T
    exact = amplitude**2

    res = min_norm_weights(gram)
    reference = min_norm_weights(gram, tol=1e-14, max_iter=100_000)
    assert res.converged and reference.converged
    _assert_on_simplex(res.weights, n)
    assert res.norm_sq == pytest.approx(exact, rel=1e-6)
    assert reference.norm_sq == pytest.approx(exact, rel=1e-6)
    assert res.norm_sq == pytest.approx(reference.norm_sq, rel=1e-6)
    assert res.gap <= 1e-6 * exact

    # KKT: (G w)_i >= w^T G w for all i, with equality on the support.
    gw = gram @ res.weights
    f = float(res.weights @ gw)
    assert float(gw.min()) >= f - 1e-12
    support = res.weights > 0
    assert float((gw[support] - f).abs().max()) <= 1e-12

    # The known failure: FW stops on a small step long before converging.
    _, fw_norm_sq, fw_iterations = _frank_wolfe_mgda(gram)
    assert fw_iterations < 100_000
    assert fw_norm_sq > 10 * res.norm_sq


# --------------------------------------------------------------------------- warm start


@pytest.mark.parametrize(("n", "d", "shift"), [(200, 500, 0.2), (1000, 100, 0.0), (400, 60, 0.3)])
def test_warm_start_is_faster_and_agrees(n: int, d: int, shift: float) -> None:
    jac = _gradients(n, d, shift, seed=n + d)
    previous = min_norm_weights(jac @ jac.T)
    gen = torch.Generator().manual_seed(99)
    moved = jac + 1e-3 * torch.randn(n, d, generator=gen, dtype=F64) / d**0.5
    gram = moved @ moved.T

    cold = min_norm_weights(gram)
    warm = min_norm_weights(gram, init=previous.weights)
    assert cold.converged and warm.converged
    assert warm.iterations < cold.iterations
    _assert_on_simplex(warm.weights, n)
    assert warm.norm_sq == pytest.approx(cold.norm_sq, rel=1e-9, abs=1e-13)
    if d > n:
        # G is positive definite, so the minimiser is unique.
        _assert_close(warm.weights, cold.weights, 1e-9)


def test_dense_init_on_rank_deficient_gram() -> None:
    # A uniform start puts all 300 indices in the starting corral, most of them affinely
    # dependent on the others (d = 20): they must be skipped, not break the factorisation.
    jac = _gradients(300, 20, 0.0, seed=8)
    gram = jac @ jac.T
    res = min_norm_weights(gram, init=torch.full((300,), 1 / 300))
    assert res.converged
    _assert_on_simplex(res.weights, 300)
    assert res.norm_sq <= 1e-12
    shifted = _gradients(300, 20, 2.0, seed=8)
    gram = shifted @ shifted.T
    res = min_norm_weights(gram, init=torch.full((300,), 1 / 300))
    assert res.converged
    assert res.norm_sq == pytest.approx(_clarabel_min_norm(shifted), rel=1e-6)


def test_init_is_projected_or_ignored() -> None:
    jac = _gradients(30, 50, 0.3, seed=3)
    gram = jac @ jac.T
    cold = min_norm_weights(gram)
    for init in (
        torch.ones(29),  # wrong shape: ignored
        torch.full((30,), float("nan")),  # not finite: ignored
        torch.randn(30, generator=torch.Generator().manual_seed(1)),  # projected
        5.0 * cold.weights.float(),  # rescaled, other dtype
    ):
        res = min_norm_weights(gram, init=init)
        assert res.converged
        assert res.norm_sq == pytest.approx(cold.norm_sq, rel=1e-10)
        _assert_close(res.weights, cold.weights, 1e-9)


# --------------------------------------------------------------------------- certificate


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("n", "d", "shift"), [(20, 60, 0.4), (60, 20, 0.0), (150, 40, 0.3), (80, 80, 1.0)]
)
def test_gap_is_a_true_certificate(seed: int, n: int, d: int, shift: float) -> None:
    jac = _gradients(n, d, shift, seed=seed)
    gram = jac @ jac.T
    optimum = min_norm_weights(gram).norm_sq
    assert optimum == pytest.approx(_clarabel_min_norm(jac), rel=1e-6, abs=1e-12)
    informative = 0
    # Truncated runs give far-from-optimal iterates whose gap must still bound the error.
    for max_iter in (0, 1, 2, 3, 5, 8, 13, 10_000):
        res = min_norm_weights(gram, max_iter=max_iter)
        _assert_on_simplex(res.weights, n)
        assert res.gap >= 0.0
        assert optimum >= res.norm_sq - res.gap - 1e-12
        assert res.norm_sq - optimum <= res.gap + 1e-12
        assert res.norm_sq >= optimum - 1e-12
        if not res.converged:
            assert res.gap > 1e-14
            informative += 1
    assert informative >= 2


# --------------------------------------------------------------------------- edge cases


def test_single_objective() -> None:
    res = min_norm_weights(torch.tensor([[2.5]]))
    assert res.weights.tolist() == [1.0]
    assert res.norm_sq == 2.5
    assert res.gap == 0.0
    assert res.converged


def test_all_zero_gram() -> None:
    res = min_norm_weights(torch.zeros(4, 4))
    _assert_close(res.weights, torch.full((4,), 0.25, dtype=F64), 0.0)
    assert res.norm_sq == 0.0 and res.gap == 0.0 and res.converged
    init = torch.tensor([0.0, 1.0, 3.0, 0.0])
    kept = min_norm_weights(torch.zeros(4, 4), init=init)
    _assert_close(kept.weights, init.double() / 4, 0.0)


def test_zero_gradient_gives_zero_norm() -> None:
    jac = torch.cat([_gradients(10, 5, 1.0, seed=0), torch.zeros(1, 5, dtype=F64)])
    res = min_norm_weights(jac @ jac.T)
    assert res.norm_sq == 0.0
    assert res.weights[-1] == 1.0


def test_two_identical_gradients() -> None:
    g = torch.tensor([[1.0, -2.0, 0.5]], dtype=F64)
    jac = torch.cat([g, g])
    res = min_norm_weights(jac @ jac.T)
    assert res.converged
    _assert_on_simplex(res.weights, 2)
    assert res.norm_sq == pytest.approx(5.25, rel=1e-12)


def test_duplicate_rows_match_deduplicated_problem() -> None:
    base = _gradients(40, 12, 0.6, seed=5)
    jac = torch.cat([base, base[:15], base[3:9]])
    res = min_norm_weights(jac @ jac.T)
    assert res.converged
    _assert_on_simplex(res.weights, 61)
    assert res.norm_sq == pytest.approx(_clarabel_min_norm(base), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize(("n", "d"), [(100, 1), (1000, 2), (300, 10)])
def test_rank_deficient_more_objectives_than_parameters(n: int, d: int) -> None:
    for shift in (0.0, 3.0):
        jac = _gradients(n, d, shift, seed=n)
        res = min_norm_weights(jac @ jac.T)
        assert res.converged
        _assert_on_simplex(res.weights, n)
        reference = _clarabel_min_norm(jac)
        assert res.norm_sq == pytest.approx(reference, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("factor", [1e-150, 1e-12, 1e12, 1e150])
def test_scale_invariance(factor: float) -> None:
    jac = _gradients(50, 20, 0.5, seed=11)
    gram = jac @ jac.T
    base = min_norm_weights(gram)
    scaled = min_norm_weights(gram * factor)
    assert scaled.converged
    _assert_close(scaled.weights, base.weights, 1e-12)
    assert scaled.norm_sq == pytest.approx(base.norm_sq * factor, rel=1e-12)


def test_only_the_symmetric_part_matters_and_dtype_is_cast() -> None:
    jac = _gradients(40, 15, 0.4, seed=2)
    gram = jac @ jac.T
    skew = torch.randn(40, 40, generator=torch.Generator().manual_seed(0), dtype=F64)
    base = min_norm_weights(gram)
    res = min_norm_weights(gram + skew - skew.T)
    _assert_close(res.weights, base.weights, 1e-10)
    single = min_norm_weights(gram.float().requires_grad_())
    assert single.weights.dtype == F64 and not single.weights.requires_grad
    assert single.weights.device == gram.device
    assert single.norm_sq == pytest.approx(base.norm_sq, rel=1e-5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_gram_raises(bad: float) -> None:
    gram = torch.eye(3)
    gram[0, 1] = bad
    with pytest.raises(ValueError, match="gram"):
        min_norm_weights(gram)


@pytest.mark.parametrize("shape", [(3, 4), (3,), (2, 2, 2), (0, 0)])
def test_bad_shape_raises(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="gram"):
        min_norm_weights(torch.zeros(shape))


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="gram"):
        min_norm_weights(-torch.eye(3))
    with pytest.raises(ValueError, match="gram"):
        min_norm_weights(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError, match="tol"):
        min_norm_weights(torch.eye(3), tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        min_norm_weights(torch.eye(3), max_iter=-1)
    with pytest.raises(TypeError, match="gram"):
        min_norm_weights(np.eye(3))  # type: ignore[arg-type]


def test_max_iter_zero_reports_not_converged() -> None:
    jac = _gradients(30, 40, 0.2, seed=4)
    res = min_norm_weights(jac @ jac.T, max_iter=0)
    assert not res.converged
    assert res.iterations == 0
    _assert_on_simplex(res.weights, 30)


# --------------------------------------------------------------------------- timing


def test_timing_n4096_d512() -> None:
    jac = _gradients(4096, 512, 0.0, seed=0)
    gram = jac @ jac.T
    best = float("inf")
    # Other processes can share the two cores; a genuine regression is slow on every try.
    for _ in range(3):
        start = time.perf_counter()
        res = min_norm_weights(gram)
        best = min(best, time.perf_counter() - start)
        if best < 5.0:
            break
    assert res.converged
    assert res.norm_sq <= 1e-12
    assert best < 5.0


# --------------------------------------------------------------------------- projection


def test_simplex_projection_matches_cvxpy() -> None:
    gen = torch.Generator().manual_seed(0)
    for n in (1, 2, 7, 50):
        for scale in (0.1, 1.0, 10.0):
            v = scale * torch.randn(n, generator=gen, dtype=F64)
            w = cp.Variable(n)
            cp.Problem(cp.Minimize(cp.sum_squares(w - v.numpy())), [w >= 0, cp.sum(w) == 1]).solve(
                solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
            )
            got = simplex_projection(v)
            _assert_on_simplex(got, n)
            _assert_close(got, torch.from_numpy(w.value), 1e-7)


def test_simplex_projection_batched_and_fixed_points() -> None:
    gen = torch.Generator().manual_seed(1)
    v = 3.0 * torch.randn(3, 4, 9, generator=gen, dtype=F64)
    out = simplex_projection(v)
    assert out.shape == v.shape and out.dtype == v.dtype
    for idx in np.ndindex(3, 4):
        _assert_close(out[idx], simplex_projection(v[idx]), 1e-15)
    _assert_close(out.sum(-1), torch.ones(3, 4, dtype=F64), 1e-12)
    assert float(out.min()) >= 0.0
    # Points already on the simplex are fixed; a constant shift does not change the result.
    _assert_close(simplex_projection(out), out, 1e-15)
    _assert_close(simplex_projection(v + 5.0), out, 1e-12)
    single = simplex_projection(v.float())
    assert single.dtype == torch.float32
    _assert_close(single, out.float(), 1e-6)
    assert simplex_projection(torch.tensor([3, 1])).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError):
        simplex_projection(torch.zeros(2, 0))
    with pytest.raises(ValueError):
        simplex_projection(torch.tensor([1.0, float("nan")]))
