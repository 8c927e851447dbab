"""Migration search: feasible, never worse, per instance of a batch, and it finds the obvious move."""

import numpy as np
import pytest
import torch

from gnnalloc import Allocation, Instance, eua_instance, random_instance
from gnnalloc.families.edge.metrics import score
from gnnalloc.families.edge.problem import ProblemTensors, max_violation, resource_utility
from gnnalloc.families.edge.projection import FastProjection
from gnnalloc.families.edge.solvers import improve_migrations, solve_exact
from gnnalloc.families.edge.solvers.functional import refill_home_compute


def _compute_objective(problem: ProblemTensors, x: torch.Tensor) -> float:
    total = problem.user_compute(x)
    return float((problem.weight * resource_utility(total, problem.compute_min, problem.penalty)).sum())


def _refilled_start(problem: ProblemTensors, seed: int, migrate: float = 0.3) -> torch.Tensor:
    """A feasible, refilled allocation that migrates little (as the learned model does)."""
    g = torch.Generator().manual_seed(seed)
    raw = problem.server_compute[problem.pair_server] * torch.rand(problem.num_pairs, generator=g, dtype=torch.float64)
    raw = torch.where(problem.pair_link >= 0, migrate * raw, raw)
    x, _ = FastProjection()(raw, torch.zeros(problem.num_users, dtype=torch.float64), problem)
    return refill_home_compute(x, problem)


def _two_servers() -> Instance:
    # u0 alone at s0 (capacity 0.5 < its minimum 1), u1 alone at s1 with room to spare. With
    # half u1's weight, u0's value above its minimum (0.5 per unit) is below u1's (1/1.5), so the
    # optimum keeps u0 exactly at its minimum.
    return Instance.from_dict(
        {
            "format": "gnnalloc.instance/v1",
            "servers": [
                {"id": "s0", "compute": 0.5, "bandwidth": 1.0},
                {"id": "s1", "compute": 2.0, "bandwidth": 1.0},
            ],
            "links": [{"a": "s0", "b": "s1", "capacity": 10.0}],
            "users": [
                {"id": "u0", "server": "s0", "compute_min": 1.0, "bandwidth_min": 1.0, "data_rate": 1.0,
                 "weight": 0.5},
                {"id": "u1", "server": "s1", "compute_min": 1.0, "bandwidth_min": 1.0, "data_rate": 1.0},
            ],
        }
    )


def test_completes_a_partly_served_user_with_a_neighbours_spare_capacity():
    instance = _two_servers()
    problem = ProblemTensors.from_instance(instance)
    start = refill_home_compute(torch.zeros(problem.num_pairs, dtype=torch.float64), problem)
    assert problem.user_compute(start).tolist() == pytest.approx([0.5, 2.0])

    improved = improve_migrations(start, problem, rounds=1)

    # The optimum: u0 takes 0.5 from s1 and sits at its minimum, u1 keeps 1.5.
    assert problem.user_compute(improved).tolist() == pytest.approx([1.0, 1.5], rel=1e-9)
    exact = solve_exact(instance)
    allocation = Allocation(compute=improved.numpy(), bandwidth=exact.allocation.bandwidth)
    assert score(instance, allocation, exact.allocation).gap == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize(
    "make",
    [lambda: random_instance(60, 6, 1.0, 1), lambda: random_instance(80, 8, 1.4, 2), lambda: eua_instance(120, 1.2, 3)],
)
def test_feasible_and_never_worse(make):
    instance = make()
    problem = ProblemTensors.from_instance(instance)
    start = _refilled_start(problem, 0)
    improved = improve_migrations(start, problem, rounds=5)
    bandwidth = np.zeros(problem.num_users)
    assert max_violation(instance, Allocation(compute=improved.numpy(), bandwidth=bandwidth)) <= 1e-9
    assert _compute_objective(problem, improved) >= _compute_objective(problem, start)


def test_more_users_than_pairs():
    # 8 of these 60 users have no candidate server, leaving 57 pairs: per-user buffers must be
    # sized by users, not pairs (this raised an IndexError before).
    instance = random_instance(60, 6, 1.0, 0)
    problem = ProblemTensors.from_instance(instance)
    assert problem.num_pairs < problem.num_users
    start = _refilled_start(problem, 0)
    improved = improve_migrations(start, problem, rounds=3)
    assert max_violation(instance, Allocation(compute=improved.numpy(), bandwidth=np.zeros(60))) <= 1e-9
    assert _compute_objective(problem, improved) >= _compute_objective(problem, start)


def test_improves_a_low_migration_start_on_eua():
    problem = ProblemTensors.from_instance(eua_instance(300, 1.0, 5))
    start = _refilled_start(problem, 1, migrate=0.05)
    before = _compute_objective(problem, start)
    after = _compute_objective(problem, improve_migrations(start, problem, rounds=3))
    # Per user of weight ~1: a clear gain, not round-off.
    assert after - before > 0.01 * problem.num_users


def test_batch_equals_separate_instances():
    instances = [random_instance(50, 5, 1.2, 7), eua_instance(90, 1.0, 8)]
    problems = [ProblemTensors.from_instance(inst) for inst in instances]
    starts = [_refilled_start(p, i) for i, p in enumerate(problems)]
    separate = [improve_migrations(x, p, rounds=4) for x, p in zip(starts, problems)]
    batched = improve_migrations(torch.cat(starts), ProblemTensors.collate(problems), rounds=4)
    torch.testing.assert_close(batched, torch.cat(separate), rtol=1e-12, atol=1e-12)


def test_zero_rounds_is_the_identity():
    problem = ProblemTensors.from_instance(random_instance(30, 4, 1.0, 0))
    start = _refilled_start(problem, 0)
    assert torch.equal(improve_migrations(start, problem, rounds=0), start)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(rounds=-1), "rounds"),
        (dict(halvings=-2), "halvings"),
        (dict(rounds=2.5), "rounds: must be a non-negative integer"),
        (dict(halvings=True), "halvings: must be a non-negative integer"),
        (dict(compute=torch.zeros(3, dtype=torch.float64)), "compute: expected shape"),
        (dict(compute="nan"), "compute: must be finite"),
    ],
)
def test_bad_input_names_the_argument(kwargs, needle):
    problem = ProblemTensors.from_instance(random_instance(20, 3, 1.0, 0))
    compute = kwargs.pop("compute", torch.zeros(problem.num_pairs, dtype=torch.float64))
    if isinstance(compute, str):
        compute = torch.full((problem.num_pairs,), float("nan"), dtype=torch.float64)
    with pytest.raises(ValueError, match=needle):
        improve_migrations(compute, problem, **kwargs)
