"""FastProjection on its own: exactness by an independent KKT certificate, feasibility, gradients,
edge cases, batching, dtypes and input validation. (Agreement with cvxpylayers: test_agreement.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.optimize import lsq_linear

from gnnalloc import Allocation, Instance, eua_instance, random_instance
from gnnalloc.families.edge.problem import ProblemTensors, max_violation
from gnnalloc.families.edge.projection import (
    FastProjection,
    capped_simplex_projection,
    conjugate_gradient,
    group_sum,
    group_threshold,
    segment_layout,
    support_threshold,
    weighted_capped_projection,
)
from gnnalloc.families.edge.solvers import proportional_share


# ---------------------------------------------------------------- helpers
def raw_decisions(instance: Instance, rng: np.random.Generator, scale: float = 1.0, batch: int = 0):
    """Demand-sized raw values with about a quarter negative, times ``scale``."""
    shape_c = (batch, instance.num_pairs) if batch else (instance.num_pairs,)
    shape_b = (batch, instance.num_users) if batch else (instance.num_users,)
    share = instance.compute_min[instance.pair_user] / 3.0
    compute = share * (0.7 + rng.normal(size=shape_c)) * scale
    bandwidth = instance.bandwidth_min * (0.7 + rng.normal(size=shape_b)) * scale
    return torch.tensor(compute), torch.tensor(bandwidth)


def project(instance: Instance, raw_c, raw_b, projection: FastProjection | None = None):
    projection = projection or FastProjection()
    x, y = projection(raw_c, raw_b, ProblemTensors.from_instance(instance))
    return x.detach().numpy(), y.detach().numpy()


def compute_certificate(instance: Instance, z: np.ndarray, x: np.ndarray, rtol: float = 1e-9) -> float:
    """Relative residual of the optimality conditions of ``x = proj(z)`` (0 when exact).

    Independent of the solver: with the tight rows and zero pairs of ``x``, solve the bounded
    least-squares problem ``z - x = A_tight^T nu - eta``, ``nu, eta >= 0`` (scipy) and report its
    residual together with the primal violation. Pairs that a zero capacity forces to 0 must be 0
    and are left out, as are the zero-capacity rows.
    """
    cols = np.arange(instance.num_pairs)
    migrated = (instance.pair_link >= 0) & (instance.pair_link_weight > 0)
    a = sp.vstack([
        sp.csr_matrix(
            (np.ones(instance.num_pairs), (instance.pair_server, cols)),
            shape=(instance.num_servers, instance.num_pairs),
        ),
        sp.csr_matrix(
            (instance.pair_link_weight[migrated], (instance.pair_link[migrated], cols[migrated])),
            shape=(instance.num_links, instance.num_pairs),
        ),
    ]).tocsr()
    b = np.concatenate([instance.server_compute, instance.link_capacity])
    load = a @ x
    violation = np.max((load - b) / np.where(b > 0, b, 1.0), initial=0.0)
    dead = np.asarray((a[b == 0] != 0).sum(axis=0)).ravel() > 0
    scale = max(1.0, float(np.abs(z).max(initial=0.0)))
    if np.abs(x[dead]).max(initial=0.0) > 0:
        return np.inf
    alive = np.flatnonzero(~dead)
    a, z, x = a[:, alive], z[alive], x[alive]
    tight = np.flatnonzero((b > 0) & (load >= b * (1.0 - rtol)))
    zero = np.flatnonzero(x <= rtol * scale)
    basis = sp.hstack([a[tight].T, -sp.eye(alive.size, format="csr")[:, zero]]).tocsr()
    target = z - x
    if basis.shape[1]:
        fit = lsq_linear(basis, target, bounds=(0.0, np.inf), tol=1e-15, lsmr_tol="auto", max_iter=5000)
        residual = np.abs(basis @ fit.x - target).max(initial=0.0)
    else:
        residual = np.abs(target).max(initial=0.0)
    return max(residual / scale, violation, -x.min(initial=0.0) / scale)


def bandwidth_reference(instance: Instance, z: np.ndarray) -> np.ndarray:
    """Per home server, project onto {y >= 0, sum y <= B} by bisection on the threshold."""
    y = np.zeros_like(z)
    for s in range(instance.num_servers):
        users = np.flatnonzero(instance.user_server == s)
        if users.size == 0:
            continue
        cap = instance.server_bandwidth[s]
        if np.maximum(z[users], 0).sum() <= cap:
            y[users] = np.maximum(z[users], 0)
            continue
        lo, hi = 0.0, float(z[users].max())
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if np.maximum(z[users] - mid, 0).sum() > cap else (lo, mid)
        y[users] = np.maximum(z[users] - hi, 0)
    return y


def feasible(instance: Instance, x: np.ndarray, y: np.ndarray) -> float:
    return max_violation(instance, Allocation(np.asarray(x, np.float64), np.asarray(y, np.float64)))


INSTANCES = {
    "random-150": lambda: random_instance(150, 15, 1.0, 0),
    "eua-300": lambda: eua_instance(300, 1.0, 1),
    "random-500-hot": lambda: random_instance(500, 40, 1.4, 2),
}


# ---------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", list(INSTANCES))
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e3])
def test_compute_is_the_exact_projection(name, scale):
    instance = INSTANCES[name]()
    raw_c, raw_b = raw_decisions(instance, np.random.default_rng(7), scale)
    projection = FastProjection()
    x, y = project(instance, raw_c, raw_b, projection)
    assert projection.last_stats.converged
    assert compute_certificate(instance, raw_c.numpy(), x) <= 1e-8
    assert feasible(instance, x, y) <= 1e-9
    assert np.allclose(y, bandwidth_reference(instance, raw_b.numpy()), rtol=1e-9, atol=1e-9 * scale)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's trf on an infeasible fit
def test_certificate_rejects_a_suboptimal_point():
    # The certificate must be able to fail: a feasible but non-optimal allocation.
    instance = random_instance(60, 6, 1.0, 0)
    raw_c, _ = raw_decisions(instance, np.random.default_rng(7), 30.0)
    x, _ = project(instance, raw_c, torch.zeros(instance.num_users, dtype=torch.float64))
    assert compute_certificate(instance, raw_c.numpy(), proportional_share(instance).compute) > 1e-2
    worse = x.copy()
    worse[np.argmax(worse)] *= 1 - 1e-4
    assert compute_certificate(instance, raw_c.numpy(), worse) > 1e-6


def test_projecting_twice_and_feasible_points_are_fixed():
    instance = eua_instance(300, 1.0, 1)
    raw_c, raw_b = raw_decisions(instance, np.random.default_rng(3), 10.0)
    x, y = project(instance, raw_c, raw_b)
    x2, y2 = project(instance, torch.tensor(x), torch.tensor(y))
    assert np.abs(x2 - x).max() <= 1e-9 * np.abs(x).max()
    assert np.abs(y2 - y).max() <= 1e-9 * np.abs(y).max()
    inside = proportional_share(instance)
    x3, y3 = project(instance, torch.tensor(0.9 * inside.compute), torch.tensor(0.9 * inside.bandwidth))
    assert np.abs(x3 - 0.9 * inside.compute).max() <= 1e-12 * np.abs(inside.compute).max()
    assert np.abs(y3 - 0.9 * inside.bandwidth).max() <= 1e-12 * np.abs(inside.bandwidth).max()


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize(
    "make, fast_mode",
    # EUA has 125 servers and 432 links: check random directions rather than the full Jacobian.
    [(lambda: random_instance(20, 4, 1.0, 0), False), (lambda: eua_instance(20, 1.0, 1), True)],
)
def test_gradcheck(make, fast_mode):
    instance = make()
    problem = ProblemTensors.from_instance(instance)
    rng = np.random.default_rng(1)
    raw_c = torch.tensor(instance.compute_min[instance.pair_user] * rng.normal(0.8, 1.0, instance.num_pairs))
    raw_b = torch.tensor(instance.bandwidth_min * rng.normal(1.5, 1.0, instance.num_users))
    projection = FastProjection(tol=1e-13)
    x, y = projection(raw_c, raw_b, problem)
    # Away from kinks, and with server and link constraints both binding.
    xs = x.numpy()
    assert np.abs(raw_c.numpy()[xs == 0]).min() > 1e-4 and xs[xs > 0].min() > 1e-4
    assert np.any(np.isclose(instance.server_compute_load(xs), instance.server_compute, rtol=1e-9))
    assert np.any(np.isclose(instance.link_load(xs), instance.link_capacity, rtol=1e-9))
    assert np.any(np.isclose(instance.server_bandwidth_load(y.numpy()), instance.server_bandwidth))
    raw_c.requires_grad_()
    raw_b.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda c, b: projection(c, b, problem), (raw_c, raw_b), eps=1e-6, atol=1e-6, rtol=1e-5,
        fast_mode=fast_mode,
    )


def test_jacobian_is_an_orthogonal_projector():
    # The projection's Jacobian P_F (I - A^T (A A^T)^+ A) P_F is symmetric and idempotent.
    instance = eua_instance(300, 1.0, 1)
    problem = ProblemTensors.from_instance(instance)
    raw_c, raw_b = raw_decisions(instance, np.random.default_rng(5), 10.0)
    raw_c.requires_grad_()
    projection = FastProjection()
    x, _ = projection(raw_c, raw_b, problem)

    def vjp(v: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(x, raw_c, v, retain_graph=True)[0]

    generator = torch.Generator().manual_seed(0)
    u, v = (torch.randn(x.shape, generator=generator, dtype=torch.float64) for _ in range(2))
    jv = vjp(v)
    assert torch.allclose(vjp(jv), jv, atol=1e-9)
    assert abs(float(u @ jv) - float(vjp(u) @ v)) <= 1e-9 * float(u.norm() * v.norm())
    # A binding constraint makes it a strict projector: some direction is removed.
    assert float(jv.norm()) < float((v * (x.detach() > 0)).norm()) - 1e-3


# ---------------------------------------------------------------- edge cases
def test_zero_capacity_servers_and_links_and_unconstrained_pairs():
    base = random_instance(120, 10, 1.2, 4)
    assert base.num_links >= 2
    data_rate = base.data_rate.copy()
    # Some users crossing links 0 and 1 ship no data: those pairs are in no link constraint.
    crossing = np.unique(base.pair_user[np.isin(base.pair_link, [0, 1])])
    data_rate[crossing[::2]] = 0.0
    compute, bandwidth, links = base.server_compute.copy(), base.server_bandwidth.copy(), base.link_capacity.copy()
    compute[9] = 0.0  # server 9 touches neither link 0 nor link 1
    bandwidth[1] = 0.0
    links[:2] = 0.0
    instance = dataclasses.replace(
        base, server_compute=compute, server_bandwidth=bandwidth, link_capacity=links, data_rate=data_rate
    )
    raw_c, raw_b = raw_decisions(instance, np.random.default_rng(2), 20.0)
    raw_c, raw_b = raw_c.abs(), raw_b.abs()  # every pair wants compute
    x, y = project(instance, raw_c, raw_b)
    assert np.all(x[instance.pair_server == 9] == 0)
    assert np.all(y[instance.user_server == 1] == 0)
    closed = np.isin(instance.pair_link, [0, 1]) & (instance.pair_link_weight > 0)
    assert closed.any() and np.all(x[closed] == 0)
    free_riders = np.isin(instance.pair_link, [0, 1]) & (instance.pair_link_weight == 0)
    assert np.any(x[free_riders] > 0)  # not forced to 0 by the closed link
    assert compute_certificate(instance, raw_c.numpy(), x) <= 1e-8
    assert feasible(instance, x, y) == 0.0
    assert np.allclose(y, bandwidth_reference(instance, raw_b.numpy()), rtol=1e-9, atol=1e-9)


def test_users_without_candidates_isolated_servers_and_no_links(tiny_dict):
    # "lonely" has no users and no links; "closed" hosts only "ar", has no links, and its one user
    # runs "video": that user has no candidate server at all (but still uses closed's bandwidth).
    tiny_dict["servers"] += [
        {"id": "lonely", "compute": 4.0, "bandwidth": 4.0},
        {"id": "closed", "compute": 4.0, "bandwidth": 4.0, "services": ["ar"]},
    ]
    tiny_dict["users"].append(
        {"id": "nowhere", "server": "closed", "service": "video", "compute_min": 1.0, "bandwidth_min": 1.0}
    )
    instance = Instance.from_dict(tiny_dict)
    assert instance.users_without_candidate.tolist() == [4]
    assert not np.isin(3, instance.pair_server)
    rng = np.random.default_rng(0)
    for links in (tiny_dict["links"], []):
        inst = Instance.from_dict({**tiny_dict, "links": links})
        raw_c = torch.tensor(rng.normal(3.0, 4.0, inst.num_pairs))
        raw_b = torch.tensor(rng.normal(5.0, 6.0, inst.num_users))
        x, y = project(inst, raw_c, raw_b)
        assert x.shape == (inst.num_pairs,) and y.shape == (inst.num_users,)
        assert compute_certificate(inst, raw_c.numpy(), x) <= 1e-9
        assert feasible(inst, x, y) <= 1e-12
        if not links:
            # Without links the compute part is a capped simplex per server.
            problem = ProblemTensors.from_instance(inst)
            expected = capped_simplex_projection(raw_c, problem.pair_server, problem.server_compute)
            assert np.allclose(x, expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("factor", [1e-6, 1e6])
def test_extreme_magnitudes_scale_exactly(factor):
    base = random_instance(100, 10, 1.0, 3)
    scaled = dataclasses.replace(
        base, server_compute=base.server_compute * factor, server_bandwidth=base.server_bandwidth * factor,
        link_capacity=base.link_capacity * factor, compute_min=base.compute_min * factor,
        bandwidth_min=base.bandwidth_min * factor,
    )
    raw_c, raw_b = raw_decisions(base, np.random.default_rng(4), 5.0)
    x, y = project(base, raw_c, raw_b)
    xs, ys = project(scaled, raw_c * factor, raw_b * factor)
    assert np.allclose(xs, factor * x, rtol=1e-8, atol=1e-10 * factor * np.abs(x).max())
    assert np.allclose(ys, factor * y, rtol=1e-8, atol=1e-10 * factor * np.abs(y).max())
    assert feasible(scaled, xs, ys) <= 1e-9
    assert compute_certificate(scaled, (raw_c * factor).numpy(), xs) <= 1e-8


def test_huge_raw_values_stay_finite_and_feasible():
    # 1e9 times the demands: close to a linear program, far beyond what the Newton iteration
    # finishes in 20 steps; the output must still be finite and feasible.
    instance = eua_instance(200, 1.0, 2)
    raw_c, raw_b = raw_decisions(instance, np.random.default_rng(9), 1e9)
    x, y = project(instance, raw_c, raw_b, FastProjection(max_iter=20))
    assert np.isfinite(x).all() and np.isfinite(y).all()
    assert feasible(instance, x, y) <= 1e-7


def test_stopping_early_is_still_feasible():
    instance = eua_instance(300, 1.0, 1)
    raw_c, raw_b = raw_decisions(instance, np.random.default_rng(5), 100.0)
    projection = FastProjection(max_iter=0)
    x, y = project(instance, raw_c, raw_b, projection)
    assert not projection.last_stats.converged
    assert feasible(instance, x, y) <= 1e-12 and x.min() >= 0 and y.min() >= 0


# ---------------------------------------------------------------- batching and dtypes
def test_collated_batch_equals_each_instance():
    instances = [random_instance(80, 8, 1.0, 1), eua_instance(60, 1.0, 2), random_instance(40, 5, 1.3, 3)]
    scales = [1.0, 1e-6, 1e6]  # mixed magnitudes in one batch
    instances = [
        dataclasses.replace(
            inst, server_compute=inst.server_compute * f, server_bandwidth=inst.server_bandwidth * f,
            link_capacity=inst.link_capacity * f,
        )
        for inst, f in zip(instances, scales)
    ]
    rng = np.random.default_rng(0)
    raws = [tuple(t * f for t in raw_decisions(inst, rng, 5.0)) for inst, f in zip(instances, scales)]
    batch = ProblemTensors.collate([ProblemTensors.from_instance(inst) for inst in instances])
    x, y = FastProjection()(torch.cat([r[0] for r in raws]), torch.cat([r[1] for r in raws]), batch)
    offset_c = offset_b = 0
    for inst, (raw_c, raw_b) in zip(instances, raws):
        xi, yi = project(inst, raw_c, raw_b)
        part_x = x[offset_c : offset_c + inst.num_pairs].numpy()
        part_y = y[offset_b : offset_b + inst.num_users].numpy()
        assert np.allclose(part_x, xi, rtol=1e-9, atol=1e-9 * np.abs(xi).max())
        assert np.allclose(part_y, yi, rtol=1e-9, atol=1e-9 * np.abs(yi).max())
        offset_c += inst.num_pairs
        offset_b += inst.num_users


def test_batch_dimension_equals_separate_calls():
    instance = eua_instance(100, 1.0, 0)
    problem = ProblemTensors.from_instance(instance)
    raw_c, raw_b = raw_decisions(instance, np.random.default_rng(1), 5.0, batch=3)
    projection = FastProjection()
    x, y = projection(raw_c, raw_b, problem)
    assert x.shape == raw_c.shape and y.shape == raw_b.shape
    for i in range(3):
        xi, yi = projection(raw_c[i], raw_b[i], problem)
        assert torch.allclose(x[i], xi, atol=1e-9) and torch.allclose(y[i], yi, atol=1e-9)


def test_float32_inputs_and_problem():
    instance = eua_instance(200, 1.0, 3)
    raw_c, raw_b = raw_decisions(instance, np.random.default_rng(2), 5.0)
    x64, y64 = project(instance, raw_c, raw_b)
    problem = ProblemTensors.from_instance(instance, dtype=torch.float32)
    c32 = raw_c.float().requires_grad_()
    b32 = raw_b.float().requires_grad_()
    x, y = FastProjection()(c32, b32, problem)
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    (x.sum() + y.sum()).backward()
    assert c32.grad.dtype == torch.float32 and torch.isfinite(c32.grad).all()
    assert feasible(instance, x.detach().numpy(), y.detach().numpy()) <= 1e-7
    scale = np.abs(raw_c.numpy()).max()
    assert np.abs(x.detach().numpy() - x64).max() <= 1e-5 * scale
    assert np.abs(y.detach().numpy() - y64).max() <= 1e-5 * np.abs(raw_b.numpy()).max()


def test_invalid_inputs_name_the_argument():
    instance = random_instance(30, 4, 1.0, 0)
    problem = ProblemTensors.from_instance(instance)
    c = torch.zeros(instance.num_pairs, dtype=torch.float64)
    b = torch.zeros(instance.num_users, dtype=torch.float64)
    projection = FastProjection()
    with pytest.raises(ValueError, match="raw_compute"):
        projection(c[:-1], b, problem)
    with pytest.raises(ValueError, match="raw_bandwidth"):
        projection(c, torch.zeros(instance.num_users + 1, dtype=torch.float64), problem)
    with pytest.raises(ValueError, match="raw_bandwidth"):
        projection(c.expand(2, -1), b.expand(3, -1), problem)
    with pytest.raises(ValueError, match="raw_compute.*NaN"):
        projection(torch.full_like(c, float("nan")), b, problem)
    with pytest.raises(ValueError, match="raw_bandwidth.*infinite"):
        projection(c, torch.full_like(b, float("inf")), problem)
    with pytest.raises(ValueError, match="raw_compute"):
        projection(c.long(), b, problem)
    with pytest.raises(ValueError, match="tol"):
        FastProjection(tol=0.0)


# ---------------------------------------------------------------- functional helpers
def _bisect(v: np.ndarray, a: np.ndarray, cap: float) -> float:
    if np.sum(a * np.maximum(v, 0)) <= cap:
        return 0.0
    lo, hi = 0.0, float(np.max(v / a))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sum(a * np.maximum(v - a * mid, 0)) > cap else (lo, mid)
    return hi


@pytest.mark.parametrize("skewed", [False, True])
def test_group_thresholds_match_bisection(skewed):
    rng = np.random.default_rng(3)
    n, groups = 3000, 60
    # Skewed sizes force the bucketed layout (one group holds most elements).
    group = np.where(rng.random(n) < 0.8, 0, rng.integers(1, groups, n)) if skewed else rng.integers(0, groups, n)
    values = rng.normal(1.0, 2.0, n)
    weights = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0.1, 2.0, n))
    capacity = rng.uniform(0.0, 20.0, groups)
    capacity[3] = 0.0
    g, v, w, c = (torch.tensor(t) for t in (group, values, weights, capacity))
    layout = segment_layout(g, groups, w > 0)
    assert (len(layout.blocks) > 1) == skewed
    tau = group_threshold(v, c, layout, torch.where(w > 0, w, torch.ones_like(w))).numpy()
    tau2, _, converged = support_threshold(v, c, g, w > 0, w)
    assert converged and np.allclose(tau2.numpy(), tau, rtol=1e-12, atol=1e-12)
    for k in range(groups):
        members = (group == k) & (weights > 0)
        if members.any():
            assert abs(tau[k] - _bisect(values[members], weights[members], capacity[k])) <= 1e-9 * (1 + tau[k])
    x = weighted_capped_projection(v, w, g, c).numpy()
    assert np.all(np.bincount(group, weights * x, groups) <= capacity * (1 + 1e-12) + 1e-12)
    assert np.allclose(x[weights == 0], np.maximum(values[weights == 0], 0))
    y = capped_simplex_projection(v, g, c).numpy()
    assert np.all(group_sum(torch.tensor(y), g, groups).numpy() <= capacity * (1 + 1e-12) + 1e-12)


def test_conjugate_gradient_solves_spd_and_consistent_singular_systems():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(40, 25))
    spd = torch.tensor(m.T @ m + 0.1 * np.eye(25))
    rhs = torch.tensor(rng.normal(size=25))
    q, _ = conjugate_gradient(lambda v: spd @ v, rhs, 1.0 / torch.diagonal(spd), rtol=1e-14, max_iter=200)
    assert torch.allclose(spd @ q, rhs, atol=1e-10)
    singular = torch.tensor(m[:10].T @ m[:10])  # rank 10
    rhs = singular @ torch.tensor(rng.normal(size=25))
    q, _ = conjugate_gradient(lambda v: singular @ v, rhs, 1.0 / torch.diagonal(singular), rtol=1e-13, max_iter=200)
    assert torch.allclose(singular @ q, rhs, atol=1e-8)


def test_conjugate_gradient_stops_without_curvature_instead_of_diverging():
    # M = 0 with rhs outside its range: the first direction has no curvature. CG must return a
    # finite iterate at once, not take a step of length rs / 0.
    ones = torch.ones(5, dtype=torch.float64)
    q, iterations = conjugate_gradient(lambda v: torch.zeros_like(v), ones, ones, max_iter=50)
    assert torch.isfinite(q).all() and iterations == 1
    # Rank-1 M = u u^T with rhs partly outside its range: after one step the next direction lies
    # in the null space (no curvature) and CG stops with the finite iterate it has.
    u = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    rhs = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    q, iterations = conjugate_gradient(
        lambda v: u * torch.dot(u, v), rhs, torch.ones(3, dtype=torch.float64), max_iter=50
    )
    assert torch.isfinite(q).all() and iterations == 2
    torch.testing.assert_close(q, torch.tensor([2.5, 1.25, 0.0], dtype=torch.float64))
