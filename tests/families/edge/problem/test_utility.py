import math

import pytest
import torch

from gnnalloc.families.edge.problem import resource_utility, user_utility


def test_branches_and_continuity():
    m = torch.tensor(2.0, dtype=torch.float64)
    r = torch.tensor([0.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    out = resource_utility(r, m, penalty=10.0)
    assert out.tolist() == pytest.approx([-10.0, -5.0, 0.0, math.log(2.0)])


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_concave_increasing_with_finite_gradients(alpha):
    m = torch.tensor(1.5, dtype=torch.float64)
    r = torch.linspace(0.0, 6.0, 601, dtype=torch.float64, requires_grad=True)
    u = resource_utility(r, m, penalty=4.0, alpha=alpha)
    (grad,) = torch.autograd.grad(u.sum(), r)
    assert torch.isfinite(u).all() and torch.isfinite(grad).all()
    assert (grad > 0).all()
    # Concave: slopes never increase.
    assert (grad[1:] <= grad[:-1] + 1e-12).all()


def test_alpha_fair_formula():
    r = torch.tensor([3.0], dtype=torch.float64)
    m = torch.tensor([1.0], dtype=torch.float64)
    expected = (3.0 ** (1 - 2.0) - 1) / (1 - 2.0)
    assert resource_utility(r, m, 10.0, 2.0).item() == pytest.approx(expected)
    # alpha -> 1 recovers the log.
    near = resource_utility(r, m, 10.0, 1.0 + 1e-7).item()
    assert near == pytest.approx(math.log(3.0), rel=1e-5)


def test_user_utility_sums_resources():
    X = torch.tensor([2.0, 0.5], dtype=torch.float64)
    y = torch.tensor([1.0, 3.0], dtype=torch.float64)
    cm = torch.tensor([1.0, 1.0], dtype=torch.float64)
    bm = torch.tensor([1.0, 1.0], dtype=torch.float64)
    w = torch.tensor([2.0, 1.0], dtype=torch.float64)
    u = user_utility(X, y, cm, bm, w, penalty=10.0)
    assert u.tolist() == pytest.approx([2 * math.log(2.0), -5.0 + math.log(3.0)])


@pytest.mark.parametrize("dtype,alpha,tol", [
    (torch.float32, 1 + 1e-6, 1e-6), (torch.float64, 1 - 1.1e-12, 1e-10), (torch.float64, 1 + 1e-11, 1e-10),
])
def test_no_cancellation_near_alpha_one(dtype, alpha, tol):
    # (r^(1-a) - 1) / (1-a) -> ln r; computed naively it was 7 % off in float32 at a = 1 + 1e-6.
    ratio = torch.tensor([1.01, 1.5, 2.0, 100.0], dtype=dtype)
    value = resource_utility(ratio, torch.ones_like(ratio), 10.0, alpha)
    torch.testing.assert_close(value, torch.log(ratio), rtol=tol + abs(1 - alpha) * 10, atol=0)
