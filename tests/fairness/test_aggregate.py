"""Aggregators from the Gram matrix: sum, certified MGDA, UPGrad (never conflicting), α-fair."""

from __future__ import annotations

import pytest
import torch

from gnnalloc.fairness import aggregate, min_norm_weights


def _conflicting(seed: int = 0, m: int = 6, d: int = 4) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    jac = torch.randn(m, d, generator=gen, dtype=torch.float64)
    jac[0] = -jac[1] + 0.1 * jac[2]  # a strong conflict
    return jac


def test_sum_is_the_preference():
    gram = torch.eye(3, dtype=torch.float64)
    weights, _ = aggregate(gram, "sum")
    assert torch.allclose(weights, torch.full((3,), 1 / 3, dtype=torch.float64))
    weights, _ = aggregate(gram, "sum", torch.tensor([1.0, 0.0, 3.0]))
    assert torch.allclose(weights, torch.tensor([0.25, 0.0, 0.75], dtype=torch.float64))
    with pytest.raises(ValueError, match="preference"):
        aggregate(gram, "sum", torch.tensor([1.0, -1.0, 1.0]))


def test_mgda_is_the_certified_min_norm_point():
    jac = _conflicting(m=3, d=5)
    gram = jac @ jac.T
    weights, result = aggregate(gram, "mgda")
    assert result is not None and result.gap <= 1e-8 * max(result.norm_sq, 1e-12) + 1e-12
    assert torch.allclose(weights, min_norm_weights(gram).weights.to(torch.float64))
    assert float(weights.sum()) == pytest.approx(1.0)
    direction_sq = float(weights @ gram @ weights)
    # Every objective's gradient has inner product >= |d|^2 with d (min-norm optimality).
    assert (gram @ weights >= direction_sq - 1e-9).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_upgrad_never_conflicts_with_an_objective(seed):
    jac = _conflicting(seed)
    gram = jac @ jac.T
    sum_weights, _ = aggregate(gram, "sum")
    assert (gram @ sum_weights < 0).any(), "the test needs a conflicting sum direction"
    weights, _ = aggregate(gram, "upgrad")
    assert (gram @ weights >= -1e-8).all()
    assert float(weights @ gram @ weights) > 0


def test_alpha_fair_weights_solve_their_equation():
    jac = _conflicting(3, m=3, d=6)
    gram = jac @ jac.T
    weights, _ = aggregate(gram, "alpha_fair", alpha=1.0)
    assert float(weights.sum()) == pytest.approx(1.0)
    assert (weights >= 0).all()
    # (G c)_i = 1 / c_i up to the common scale: (G c)_i c_i is the same for every i.
    scaled = gram / gram.diagonal().max()
    products = (scaled @ weights) * weights
    assert torch.allclose(products, products.mean().expand(3), rtol=1e-3)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="gram"):
        aggregate(torch.ones(2, 3), "sum")
    with pytest.raises(ValueError, match="aggregator"):
        aggregate(torch.eye(2), "median")
    with pytest.raises(ValueError, match="gram"):
        aggregate(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), "mgda")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_preference_is_named(bad):
    # Was accepted: NaN weights (nan and inf pass "< 0", and inf / inf is NaN).
    with pytest.raises(ValueError, match=r"^preference: expected 4 finite"):
        aggregate(torch.eye(4, dtype=torch.float64), "sum", torch.tensor([1.0, bad, 0.0, 0.0]))


def test_alpha_fair_alpha_is_checked_by_name():
    with pytest.raises(ValueError, match=r"^alpha:"):
        aggregate(torch.eye(2, dtype=torch.float64), "alpha_fair", alpha=float("nan"))
