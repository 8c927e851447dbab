"""HomeRefillJacobian: the refill's batched vector-Jacobian product equals autograd's."""

import pytest
import torch

from gnnalloc import eua_instance, random_instance
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.projection import FastProjection
from gnnalloc.families.edge.solvers.functional import HomeRefillJacobian, _waterfill, refill_home_compute, waterfill_groups


def _feasible(problem: ProblemTensors, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    raw = scale * problem.server_compute[problem.pair_server] * torch.rand(problem.num_pairs, generator=g, dtype=torch.float64)
    x, _ = FastProjection()(raw, torch.zeros(problem.num_users, dtype=torch.float64), problem)
    return x


def _autograd_vjp(problem: ProblemTensors, x: torch.Tensor, cotangents: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    out = refill_home_compute(x, problem)
    (grad,) = torch.autograd.grad(out, x, cotangents, is_grads_batched=True)
    return grad


@pytest.mark.parametrize(
    "make, seed",
    [
        (lambda: random_instance(40, 5, 1.0, 1), 0),
        (lambda: random_instance(60, 6, 1.4, 2), 1),
        (lambda: eua_instance(80, 0.8, 3), 2),
        (lambda: eua_instance(120, 1.3, 4), 3),
    ],
)
def test_vjp_equals_autograd(make, seed):
    problem = ProblemTensors.from_instance(make())
    x = _feasible(problem, seed)
    cotangents = torch.randn(7, problem.num_pairs, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    bandwidth = torch.randn(7, problem.num_users, dtype=torch.float64)
    ours, passed = HomeRefillJacobian(problem, x)(cotangents, bandwidth)
    assert torch.equal(passed, bandwidth)
    assert torch.allclose(ours, _autograd_vjp(problem, x, cotangents), rtol=1e-9, atol=1e-9)


def test_sensitivity_at_a_jump_matches_finite_differences():
    # One server, three users with equal minimums, capacity 1.6: the price sits on the drop
    # k w/m, user 0 is served fully, user 1 partly (it absorbs every change), user 2 not at all.
    m = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    w = torch.ones(3, dtype=torch.float64)
    group = torch.zeros(3, dtype=torch.long)
    capacity = torch.tensor([1.6], dtype=torch.float64)
    offset = torch.tensor([0.0, 0.2, 0.0], dtype=torch.float64)
    y, price = waterfill_groups(capacity, m, w, group, 10.0, offset=offset)
    assert price.item() == pytest.approx(10.0)
    assert torch.allclose(y, torch.tensor([1.0, 0.6, 0.0], dtype=torch.float64))
    _, _, sensitivity = _waterfill(capacity, m, w, group, 10.0, 1.0, offset, sensitivity=True)
    assert sensitivity.share.tolist() == [0.0, 1.0, 0.0]
    assert sensitivity.active.tolist() == [True, True, False]
    # dy_i = beta_i (dB + sum_active do_j) - [i active] do_i, against one-sided differences.
    active = sensitivity.active.to(torch.float64)
    eps = 1e-7
    bumped_y, _ = waterfill_groups(capacity + eps, m, w, group, 10.0, offset=offset)
    assert torch.allclose((bumped_y - y) / eps, sensitivity.share, atol=1e-6)
    for j in range(3):
        bumped = offset.clone()
        bumped[j] += eps
        bumped_y, _ = waterfill_groups(capacity, m, w, group, 10.0, offset=bumped)
        expected = sensitivity.share * active[j] - active * (torch.arange(3) == j)
        assert torch.allclose((bumped_y - y) / eps, expected, atol=1e-6)


def test_no_home_pairs_passes_cotangents_through():
    problem = ProblemTensors.from_instance(random_instance(20, 3, 1.0, 0))
    problem.pair_link = torch.where(problem.pair_link < 0, torch.zeros_like(problem.pair_link), problem.pair_link)
    x = torch.zeros(problem.num_pairs, dtype=torch.float64)
    cot = torch.randn(2, problem.num_pairs, dtype=torch.float64)
    out, _ = HomeRefillJacobian(problem, x)(cot, torch.zeros(2, problem.num_users, dtype=torch.float64))
    assert torch.equal(out, cot)


@pytest.mark.parametrize(
    "bad, needle",
    [(torch.zeros(3, dtype=torch.float64), "compute: expected shape"), ("nan", "compute: must be finite")],
)
def test_bad_point_names_the_argument(bad, needle):
    problem = ProblemTensors.from_instance(random_instance(20, 3, 1.0, 0))
    if isinstance(bad, str):
        bad = torch.full((problem.num_pairs,), float("nan"), dtype=torch.float64)
    with pytest.raises(ValueError, match=needle):
        HomeRefillJacobian(problem, bad)
