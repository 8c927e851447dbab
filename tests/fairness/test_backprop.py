"""Fairness backpropagation: Gram modes agree where they must, and MGDA steps are Pareto steps."""

import pytest
import torch

from gnnalloc import random_instance
from gnnalloc.fairness import FairBackward, loss_decrease_share
from gnnalloc.families.edge.training import per_user_loss
from gnnalloc.families.edge.problem import Instance, ProblemTensors
from gnnalloc.families.edge.projection import FastProjection
from gnnalloc.families.edge.projection._jacobian import ProjectionJacobian
from gnnalloc.families.edge.solvers.functional import refill_home_compute


def _decisions(problem: ProblemTensors, fill: float, seed: int = 0):
    """Raw decisions as free parameters: a 'model' whose parameters are its outputs."""
    g = torch.Generator().manual_seed(seed)
    raw_c = fill * problem.server_compute[problem.pair_server] / 4 * torch.rand(problem.num_pairs, generator=g, dtype=torch.float64)
    raw_b = fill * problem.server_bandwidth[problem.user_server] / 4 * torch.rand(problem.num_users, generator=g, dtype=torch.float64)
    return torch.nn.Parameter(raw_c), torch.nn.Parameter(raw_b)


def _forward(problem, params, projection):
    x, y = projection(params[0], params[1], problem)
    return x, y, per_user_loss(problem, x, y)


@pytest.mark.parametrize("fill", [0.3, 3.0])
def test_output_gram_equals_exact_gram_when_parameters_are_the_decisions(fill):
    problem = ProblemTensors.from_instance(random_instance(24, 4, 1.0, 3))
    params = _decisions(problem, fill)
    projection = FastProjection()
    x, y, losses = _forward(problem, params, projection)
    exact = FairBackward("exact")._per_user_jacobian(losses, params)
    gram_exact = exact @ exact.T
    gram_output = FairBackward("output").output_gram(
        losses, x, y, problem.pair_user, ProjectionJacobian(problem, x, y)
    )
    assert torch.allclose(gram_output, gram_exact, atol=1e-9 * gram_exact.abs().max())


@pytest.mark.parametrize("fill", [0.3, 3.0])
def test_output_gram_through_home_refill_equals_exact_gram(fill):
    # Losses of the refilled decisions: the refill couples the home users of a server, so the
    # Gram goes through its (non-symmetric) Jacobian before the projection's.
    problem = ProblemTensors.from_instance(random_instance(24, 4, 1.0, 5))
    params = _decisions(problem, fill)
    projected, y = FastProjection()(params[0], params[1], problem)
    x = refill_home_compute(projected, problem)
    losses = per_user_loss(problem, x, y)
    exact = FairBackward("exact")._per_user_jacobian(losses, params)
    gram_exact = exact @ exact.T

    def inner(cot_x, cot_y):
        (through,) = torch.autograd.grad(x, projected, cot_x, retain_graph=True, is_grads_batched=True)
        return through, cot_y

    gram_output = FairBackward("output", block_size=7).output_gram(
        losses, x, y, problem.pair_user, ProjectionJacobian(problem, projected, y), inner
    )
    assert torch.allclose(gram_output, gram_exact, atol=1e-9 * gram_exact.abs().max())


def test_output_gram_equals_exact_when_users_do_not_interact():
    # Each user alone on its own server, no links: losses are independent, both Grams diagonal.
    doc = {
        "format": "gnnalloc.instance/v1",
        "servers": [{"id": f"s{i}", "compute": 5.0 + i, "bandwidth": 4.0} for i in range(4)],
        "users": [{"id": f"u{i}", "server": f"s{i}", "compute_min": 1.0 + i, "bandwidth_min": 1.0} for i in range(4)],
    }
    problem = ProblemTensors.from_instance(Instance.from_dict(doc))
    params = _decisions(problem, 2.0)
    projection = FastProjection()
    x, y, losses = _forward(problem, params, projection)
    exact = FairBackward("exact")._per_user_jacobian(losses, params)
    gram_output = FairBackward("output").output_gram(losses, x, y, problem.pair_user, ProjectionJacobian(problem, x, y))
    assert torch.allclose(gram_output, exact @ exact.T, atol=1e-12)
    assert torch.count_nonzero(gram_output - torch.diag(torch.diag(gram_output))) == 0


def _step(mode: str, problem, seed: int, lr: float):
    projection = FastProjection()
    params = _decisions(problem, 0.6, seed)
    x, y, losses = _forward(problem, params, projection)
    fair = FairBackward(mode)
    pullback = ProjectionJacobian(problem, x, y)
    stats = fair(losses, params, compute=x, bandwidth=y, pair_user=problem.pair_user, pullback=pullback)
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad / max(float(p.grad.abs().max()), 1e-300)
        _, _, after = _forward(problem, params, projection)
    return losses.detach(), after, stats


def test_mgda_step_lowers_every_users_loss_while_sum_step_trades_users():
    # Servers partly used (raw decisions inside the feasible set) and one saturated hot spot:
    # the sum step moves capacity between users of the hot spot, MGDA only grows allocations.
    problem = ProblemTensors.from_instance(random_instance(16, 3, 0.8, 7))
    lr = 0.05
    before, after_sum, _ = _step("sum", problem, 1, lr)
    assert after_sum.sum() < before.sum()
    assert (after_sum > before + 1e-12).any(), "the sum step should raise some users' losses"
    for mode in ("output", "exact"):
        before, after, stats = _step(mode, problem, 1, lr)
        assert stats.stationary == 0.0
        assert (after < before).all(), f"{mode}: every user's loss must go down"
        assert loss_decrease_share(before, after) == 1.0


def test_saturated_allocation_is_pareto_stationary():
    # Every server full: any change is zero-sum, so the min-norm direction is zero.
    problem = ProblemTensors.from_instance(random_instance(20, 3, 1.0, 2, penalty=10.0))
    params = _decisions(problem, 40.0, 0)
    projection = FastProjection()
    x, y, losses = _forward(problem, params, projection)
    fair = FairBackward("output", stationary="stop")
    stats = fair(losses, params, compute=x, bandwidth=y, pair_user=problem.pair_user,
                 pullback=ProjectionJacobian(problem, x, y))
    assert stats.stationary == 1.0 and stats.scale == 0.0
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in params)


def test_weighted_backward_matches_explicit_combination():
    problem = ProblemTensors.from_instance(random_instance(12, 3, 0.7, 1))
    params = _decisions(problem, 0.5, 4)
    projection = FastProjection()
    x, y, losses = _forward(problem, params, projection)
    jac = FairBackward("exact")._per_user_jacobian(losses, params)
    fair = FairBackward("output", rescale=False)
    stats = fair(losses, params, compute=x, bandwidth=y, pair_user=problem.pair_user,
                 pullback=ProjectionJacobian(problem, x, y))
    got = torch.cat([p.grad.reshape(-1) for p in params])
    expected = fair._previous @ jac
    assert torch.allclose(got, expected, atol=1e-10)
    assert stats.min_norm_sq == pytest.approx(float(expected @ expected), rel=1e-6, abs=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        FairBackward("median")
    fair = FairBackward("output")
    with pytest.raises(ValueError, match="losses"):
        fair(torch.tensor([1.0, float("nan")], requires_grad=True), [])


def test_stationary_flag_when_the_mean_gradient_vanishes():
    theta = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    cases = [
        (torch.stack([theta[0], -theta[0]]), 1.0),  # opposite gradients: their mean is 0
        (torch.stack([theta[0] * 0 + 1.0, theta[0] * 0 + 2.0]), 1.0),  # no gradient at all
        (torch.stack([theta[0], -2 * theta[0]]), 1.0),
        (torch.stack([theta[0], 2 * theta[0]]), 0.0),  # a common descent direction exists
    ]
    for losses, stationary in cases:
        assert FairBackward("exact")(losses, [theta]).stationary == stationary
