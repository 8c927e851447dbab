"""Home refill: exact local split given the migrations, feasibility kept, never worse."""

import cvxpy as cp
import numpy as np
import pytest
import torch

from gnnalloc import eua_instance, random_instance
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.projection import FastProjection
from gnnalloc.families.edge.solvers import proportional_share
from gnnalloc.families.edge.solvers.functional import refill_home_compute


def _feasible_start(problem: ProblemTensors, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    raw = problem.server_compute[problem.pair_server] * torch.rand(problem.num_pairs, generator=g, dtype=torch.float64)
    raw_b = torch.zeros(problem.num_users, dtype=torch.float64)
    x, _ = FastProjection()(raw, raw_b, problem)
    return x


def _home_optimum(problem: ProblemTensors, x: torch.Tensor) -> float:
    """The compute objective maximised over the home pairs with every migrated pair fixed."""
    home = (problem.pair_link < 0).numpy()
    pu, ps = problem.pair_user.numpy(), problem.pair_server.numpy()
    xm = np.where(home, 0.0, x.numpy())
    offset = np.bincount(pu, xm, problem.num_users)
    left = problem.server_compute.numpy() - np.bincount(ps, xm, problem.num_servers)
    m, w = problem.compute_min.numpy(), problem.weight.numpy()
    k = float(problem.penalty[0])
    z = cp.Variable(int(home.sum()), nonneg=True)
    a = cp.Variable(problem.num_users, nonneg=True)
    b = cp.Variable(problem.num_users, nonneg=True)
    to_user = np.zeros((problem.num_users, z.size))
    to_user[pu[home], np.arange(z.size)] = 1.0
    to_server = np.zeros((problem.num_servers, z.size))
    to_server[ps[home], np.arange(z.size)] = 1.0
    objective = cp.sum(cp.multiply(w, k * (a - m) / m + cp.log(1 + b / m)))
    constraints = [a <= m, a + b == offset + to_user @ z, to_server @ z <= np.maximum(left, 0.0)]
    cp.Problem(cp.Maximize(objective), constraints).solve(solver=cp.CLARABEL)
    return float(objective.value)


def _compute_objective(problem: ProblemTensors, x: torch.Tensor) -> float:
    from gnnalloc.families.edge.problem import resource_utility

    total = problem.user_compute(x)
    return float((problem.weight * resource_utility(total, problem.compute_min, problem.penalty)).sum())


@pytest.mark.parametrize(
    "make", [lambda: random_instance(40, 5, 1.0, 1), lambda: random_instance(60, 6, 1.4, 2), lambda: eua_instance(80, 0.8, 3)]
)
def test_refill_is_the_home_optimum_and_stays_feasible(make):
    problem = ProblemTensors.from_instance(make())
    x = _feasible_start(problem, 0)
    refilled = refill_home_compute(x, problem)
    migrated = problem.pair_link >= 0
    assert torch.equal(refilled[migrated], x[migrated])
    assert (refilled >= 0).all()
    assert (problem.server_compute_load(refilled) <= problem.server_compute * (1 + 1e-12)).all()
    assert (problem.link_load(refilled) <= problem.link_capacity * (1 + 1e-9)).all()
    before, after = _compute_objective(problem, x), _compute_objective(problem, refilled)
    assert after >= before - 1e-9
    assert after == pytest.approx(_home_optimum(problem, x), rel=1e-6, abs=1e-6)


def test_refill_improves_the_proportional_baseline():
    inst = eua_instance(200, 1.0, 11)
    problem = ProblemTensors.from_instance(inst)
    x = torch.as_tensor(np.asarray(proportional_share(inst).compute))
    assert _compute_objective(problem, refill_home_compute(x, problem)) > _compute_objective(problem, x) + 1.0


def test_refill_rejects_bad_compute():
    problem = ProblemTensors.from_instance(random_instance(10, 2, 1.0, 0))
    with pytest.raises(ValueError, match="compute: expected shape"):
        refill_home_compute(torch.zeros(problem.num_pairs + 1, dtype=torch.float64), problem)
    for bad in (float("nan"), float("inf"), -1.0):
        x = torch.ones(problem.num_pairs, dtype=torch.float64)
        x[0] = bad
        with pytest.raises(ValueError, match="compute: must be finite and non-negative"):
            refill_home_compute(x, problem)


def test_penalty_one_stays_within_capacity():
    # With k = 1 a member's drop price is where its log regime ends; the refill and the bandwidth
    # water-filling used to hand every such member its full minimum (1.12x capacity here).
    from gnnalloc.families.edge.solvers.functional import waterfill_bandwidth

    instance = random_instance(60, 6, 1.4, seed=1, penalty=1.0)
    problem = ProblemTensors.from_instance(instance)
    start = torch.as_tensor(proportional_share(instance).compute)
    refilled = refill_home_compute(start, problem)
    load = problem.server_compute_load(refilled)
    assert (load <= problem.server_compute * (1 + 1e-12) + 1e-12).all()
    bandwidth = waterfill_bandwidth(problem)
    bandwidth_load = torch.zeros_like(problem.server_bandwidth).index_add(0, problem.user_server, bandwidth)
    assert (bandwidth_load <= problem.server_bandwidth * (1 + 1e-12) + 1e-12).all()
