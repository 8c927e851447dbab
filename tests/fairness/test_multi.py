"""FairnessLoss: the loss's gradient is the aggregated direction; the fast unit Jacobian."""

from __future__ import annotations

import pytest
import torch

from gnnalloc.fairness import FairnessLoss, objective_jacobian


def _setup(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(5, dtype=torch.float64, generator=gen, requires_grad=True)
    mix = torch.randn(6, 5, dtype=torch.float64, generator=gen)
    z = torch.tanh(mix @ theta)  # the "last shared representation"
    instance = torch.tensor([0, 0, 0, 1, 1, 2])
    # Unit k depends only on its own instance's entries of z.
    same = (instance[:, None] == instance[None, :]).to(z.dtype)
    utility = (same * torch.outer(torch.arange(1.0, 7.0, dtype=torch.float64), torch.ones(6))) @ z.sin()
    utility = utility + z ** 2
    return theta, z, utility, instance


def test_blocked_unit_jacobian_equals_the_row_by_row_one():
    theta, z, utility, instance = _setup()
    full = objective_jacobian(utility, [z])
    blocked = objective_jacobian(utility, [z], instance, instance)
    assert torch.allclose(full, blocked)


@pytest.mark.parametrize("aggregator", ["sum", "mgda", "upgrad", "alpha_fair"])
@pytest.mark.parametrize("objectives", ["unit", "instance", "efficiency_fairness"])
def test_loss_gradient_is_the_aggregated_direction(objectives, aggregator):
    theta, z, utility, instance = _setup(1)
    fair = FairnessLoss(objectives, aggregator, rescale=False)
    loss, stats = fair(utility, [theta], instance=instance)
    values = fair.objective_values(utility, instance)
    jac = objective_jacobian(values, [theta])
    (grad,) = torch.autograd.grad(loss, theta)
    assert stats["num_objectives"] == values.numel()
    assert 0.0 <= stats["weights_entropy"] <= 1.0 + 1e-9
    if aggregator == "sum":
        return
    assert 0.0 <= stats["conflicts"] <= 1.0
    direction = -grad  # ascent direction on the objectives
    alignment = jac @ direction
    if aggregator in ("mgda", "upgrad") and not stats["stationary"]:
        assert (alignment >= -1e-8).all()


def test_settings_are_named():
    for kwargs, field in (({"objectives": "users"}, "objectives"), ({"aggregator": "x"}, "aggregator"),
                          ({"tradeoff": 2.0}, "tradeoff"), ({"share": 0.0}, "share"), ({"alpha": -1.0}, "alpha"),
                          ({"temperature": 0.0}, "temperature"), ({"temperature": float("inf")}, "temperature"),
                          ({"fairness_term": "jain"}, "fairness_term"), ({"log_offset": 0.0}, "log_offset"),
                          ({"objectives": "instance", "fairness_term": "log"}, "fairness_term")):
        with pytest.raises(ValueError, match=field):
            FairnessLoss(**kwargs)
    with pytest.raises(ValueError, match="group"):
        FairnessLoss("group")(torch.ones(3))
    with pytest.raises(ValueError, match="utility"):
        FairnessLoss()(torch.tensor([1.0, float("nan")]))


def test_softmin_leans_on_the_largest_regret_and_the_baseline_changes_only_values():
    theta, z, utility, instance = _setup(2)
    # Instance 2 is far below its reference, instances 0 and 1 are at theirs.
    baseline = utility.detach() + torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 3.0], dtype=torch.float64)
    fair = FairnessLoss("instance", "softmin", temperature=0.5)
    loss, stats = fair(utility, [theta], instance=instance, baseline=baseline)
    values = fair.objective_values(utility - baseline, instance)
    weights = torch.softmax(-values.detach() / 0.5, dim=0)
    assert int(weights.argmax()) == 2 and stats["weights_max"] == pytest.approx(float(weights.max()))
    (grad,) = torch.autograd.grad(loss, theta, retain_graph=True)
    (expected,) = torch.autograd.grad(-(weights * fair.objective_values(utility, instance)).sum(), theta,
                                      retain_graph=True)
    torch.testing.assert_close(grad, expected)  # the baseline moves the weights, not the gradients
    cold = FairnessLoss("instance", "softmin", temperature=1e6)(utility, instance=instance, baseline=baseline)[1]
    assert cold["weights_max"] == pytest.approx(1 / 3, rel=1e-4)  # a high temperature is the mean
    with pytest.raises(ValueError, match="baseline"):
        fair(utility, instance=instance, baseline=baseline[:3])


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"alpha": float("nan")}, "alpha"),  # was accepted
        ({"alpha": "x"}, "alpha"),  # was a TypeError
        ({"stationary_rtol": -1.0}, "stationary_rtol"),  # was accepted
        ({"stationary_rtol": float("nan")}, "stationary_rtol"),
        ({"share": "x"}, "share"),  # was a TypeError
    ],
)
def test_settings_are_checked_by_name(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        FairnessLoss(**kwargs)


def test_one_weights_entropy():
    import math

    from gnnalloc.fairness import _backprop, _objectives

    # FairBackward's statistic took weights summing to 1 without normalising them: [2, 2] had
    # "entropy" -4. One definition now, normalised, as FairnessLoss's.
    assert _backprop._entropy is _objectives._entropy
    assert _backprop._entropy(torch.tensor([2.0, 2.0], dtype=torch.float64)) == pytest.approx(1.0)
    # On a simplex point (what min_norm_weights returns) the logged value is the usual entropy.
    w = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    expected = -(0.5 * math.log(0.5) + 0.5 * math.log(0.25)) / math.log(3)
    assert _objectives._entropy(w) == pytest.approx(expected, rel=1e-15)


def test_the_log_term_reaches_the_pair():
    rates = torch.tensor([0.0, 1.0, 3.0, 2.0], dtype=torch.float64)
    instance = torch.tensor([0, 0, 1, 1])
    fair = FairnessLoss("efficiency_fairness", "sum", tradeoff=0.25, fairness_term="log", log_offset=0.1)
    loss, _ = fair(rates, instance=instance)
    log_term = (torch.log(torch.tensor([0.1, 1.1])).mean() + torch.log(torch.tensor([3.1, 2.1])).mean()) / 2
    assert float(loss) == pytest.approx(-(0.75 * 1.5 + 0.25 * float(log_term)))
