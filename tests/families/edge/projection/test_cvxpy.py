"""CvxpyProjection, the cvxpylayers reference: against a direct cvxpy QP solve, caching, shapes."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnalloc import Allocation, Instance, random_instance
from gnnalloc.families.edge.problem import ProblemTensors, max_violation
from gnnalloc.families.edge.projection import CvxpyProjection


def direct_qp(instance: Instance, raw_c: np.ndarray, raw_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The projection as a plain cvxpy QP (Clarabel with a quadratic objective, no diffcp)."""
    pairs, users = instance.num_pairs, instance.num_users
    x = cp.Variable(pairs, nonneg=True)
    y = cp.Variable(users, nonneg=True)
    cols = np.arange(pairs)
    servers = sp.csr_matrix((np.ones(pairs), (instance.pair_server, cols)), shape=(instance.num_servers, pairs))
    homes = sp.csr_matrix((np.ones(users), (instance.user_server, np.arange(users))), shape=(instance.num_servers, users))
    constraints = [servers @ x <= instance.server_compute, homes @ y <= instance.server_bandwidth]
    migrated = instance.pair_link >= 0
    if migrated.any():
        links = sp.csr_matrix(
            (instance.pair_link_weight[migrated], (instance.pair_link[migrated], cols[migrated])),
            shape=(instance.num_links, pairs),
        )
        constraints.append(links @ x <= instance.link_capacity)
    objective = cp.Minimize(cp.sum_squares(x - raw_c) + cp.sum_squares(y - raw_b))
    cp.Problem(objective, constraints).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )
    return x.value, y.value


def raw(instance: Instance, seed: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    share = instance.compute_min[instance.pair_user] / 3.0
    return (
        torch.tensor(share * rng.normal(0.7, 1.0, (batch, instance.num_pairs))),
        torch.tensor(instance.bandwidth_min * rng.normal(0.7, 1.0, (batch, instance.num_users))),
    )


def test_matches_a_direct_qp_solve_batched(tiny_dict):
    for instance in (Instance.from_dict(tiny_dict), random_instance(40, 5, 1.2, 1)):
        problem = ProblemTensors.from_instance(instance)
        raw_c, raw_b = raw(instance, 0, 3)
        projection = CvxpyProjection()
        x, y = projection(raw_c, raw_b, problem)
        assert x.shape == raw_c.shape and y.shape == raw_b.shape
        assert projection.last_polished == 6 and projection.last_unpolished == 0
        for i in range(3):
            xd, yd = direct_qp(instance, raw_c[i].numpy(), raw_b[i].numpy())
            # The direct interior-point solve is itself only accurate to ~1e-7.
            assert np.abs(x[i].numpy() - xd).max() <= 1e-6
            assert np.abs(y[i].numpy() - yd).max() <= 1e-6
            assert max_violation(instance, Allocation(x[i].numpy(), y[i].numpy())) <= 1e-9


def test_unpolished_interior_point_value_is_close():
    instance = random_instance(40, 5, 1.2, 1)
    problem = ProblemTensors.from_instance(instance)
    raw_c, raw_b = raw(instance, 1, 1)
    polished = CvxpyProjection()(raw_c[0], raw_b[0], problem)
    plain = CvxpyProjection(polish=False)(raw_c[0], raw_b[0], problem)
    for a, b in zip(polished, plain):
        assert (a - b).abs().max() <= 1e-3


def test_layers_are_cached_per_structure():
    first, second = random_instance(20, 3, 1.0, 0), random_instance(20, 3, 1.0, 1)
    projection = CvxpyProjection(cache_size=1)
    a = ProblemTensors.from_instance(first)
    projection(*[t[0] for t in raw(first, 0, 1)], a)
    layer = projection._layer(a)
    projection(*[t[0] for t in raw(first, 1, 1)], ProblemTensors.from_instance(first))  # equal data
    assert projection._layer(ProblemTensors.from_instance(first)) is layer
    projection(*[t[0] for t in raw(second, 0, 1)], ProblemTensors.from_instance(second))
    assert len(projection._cache) == 1 and projection._layer(a) is not layer  # evicted, rebuilt


def test_gradient_flows_and_nothing_free_gives_zeros(tiny_dict):
    instance = Instance.from_dict(tiny_dict)
    problem = ProblemTensors.from_instance(instance)
    raw_c, raw_b = (t[0].requires_grad_() for t in raw(instance, 2, 1))
    x, y = CvxpyProjection()(raw_c, raw_b, problem)
    (x.sum() + y.sum()).backward()
    assert torch.isfinite(raw_c.grad).all() and torch.isfinite(raw_b.grad).all()
    for server in tiny_dict["servers"]:
        server["compute"] = server["bandwidth"] = 0.0
    closed = Instance.from_dict(tiny_dict)
    x, y = CvxpyProjection()(raw_c.detach(), raw_b.detach(), ProblemTensors.from_instance(closed))
    assert not x.any() and not y.any()


def test_invalid_inputs_name_the_argument():
    instance = random_instance(10, 2, 1.0, 0)
    problem = ProblemTensors.from_instance(instance)
    raw_c, raw_b = (t[0] for t in raw(instance, 0, 1))
    with pytest.raises(ValueError, match="raw_compute"):
        CvxpyProjection()(raw_c[1:], raw_b, problem)
    with pytest.raises(ValueError, match="raw_bandwidth.*NaN"):
        CvxpyProjection()(raw_c, raw_b * float("nan"), problem)
    with pytest.raises(ValueError, match="mode"):
        CvxpyProjection(mode="exact")
