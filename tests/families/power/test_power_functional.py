"""The rate model as tensor functions: hand computations, masks, scale-freeness, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from gnnalloc.core import resource_utility
from gnnalloc.families.power.functional import (
    link_rates, link_utility, sinr, total_utility, weighted_sum_rate,
)


def _two_links() -> tuple[torch.Tensor, torch.Tensor, float]:
    gains = torch.tensor([[[0.8, 0.1], [0.2, 0.5]]], dtype=torch.float64)
    power = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    return gains, power, 0.1


def test_rates_match_a_hand_computation():
    gains, power, noise = _two_links()
    # link 0: 0.8*1 / (0.1 + 0.1*0.5) = 0.8/0.15; link 1: 0.5*0.5 / (0.1 + 0.2*1) = 0.25/0.3
    expected_sinr = [0.8 / 0.15, 0.25 / 0.3]
    assert sinr(gains, power, noise)[0].tolist() == pytest.approx(expected_sinr, rel=1e-12)
    rates = link_rates(gains, power, noise)[0]
    assert rates.tolist() == pytest.approx([math.log2(1 + s) for s in expected_sinr], rel=1e-12)
    weights = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
    wsr = weighted_sum_rate(gains, power, noise, weights)
    assert wsr.item() == pytest.approx(2 * math.log2(1 + 0.8 / 0.15) + math.log2(1 + 0.25 / 0.3))


def test_noise_per_instance_and_scale_free():
    gains, power, _ = _two_links()
    batch = torch.cat([gains, gains * 1e-13])
    rates = link_rates(batch, power.expand(2, 2), torch.tensor([0.1, 0.1e-13], dtype=torch.float64))
    assert torch.allclose(rates[0], rates[1], rtol=1e-12)
    # float32 on real path losses (1e-15 gains, 1e-14 noise) agrees with float64
    tiny = link_rates(gains.float() * 1e-13, power.float(), torch.tensor([1e-14]))
    assert torch.allclose(tiny.double(), rates[0:1], rtol=1e-5)


def test_dominant_direct_gain_does_not_cancel_interference():
    gains = torch.tensor([[[1.0, 1e-18], [1e-18, 1.0]]], dtype=torch.float64)
    power = torch.ones(1, 2, dtype=torch.float64)
    s = sinr(gains, power, 1e-17)
    assert s[0, 0].item() == pytest.approx(1.0 / (1e-17 + 1e-18), rel=1e-12)


def test_mask_pads_links_out():
    gains, power, noise = _two_links()
    padded = torch.zeros(1, 3, 3, dtype=torch.float64)
    padded[:, :2, :2] = gains
    padded[:, 2, :] = 7.0  # garbage on the padded link: it must not matter
    padded[:, :, 2] = 7.0
    p = torch.tensor([[1.0, 0.5, 3.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    rates = link_rates(padded, p, noise, mask)
    assert torch.allclose(rates[:, :2], link_rates(gains, power, noise))
    assert rates[0, 2].item() == 0.0
    rate_min = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    p.requires_grad_(True)
    value = total_utility(padded, p, noise, rate_min=rate_min, utility="alpha_fair", mask=mask)
    value.sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad[0, 2].item() == 0.0


def test_alpha_fair_uses_the_core_kernel():
    rates = torch.tensor([[0.2, 1.0, 3.0]], dtype=torch.float64)
    weights = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64)
    rate_min = torch.tensor([[0.5, 0.5, 1.0]], dtype=torch.float64)
    out = link_utility(rates, weights, rate_min, alpha=2.0, penalty=5.0, utility="alpha_fair")
    assert torch.allclose(out, weights * resource_utility(rates, rate_min, 5.0, 2.0))
    assert torch.allclose(link_utility(rates, weights), weights * rates)


def test_bad_utility_named():
    rates = torch.ones(1, 2)
    with pytest.raises(ValueError, match="^utility:"):
        link_utility(rates, utility="max_min")
    with pytest.raises(ValueError, match="^rate_min:"):
        link_utility(rates, utility="alpha_fair")


def test_gradients_flow():
    gains, power, noise = _two_links()
    power = power.clone().requires_grad_(True)
    weighted_sum_rate(gains, power, noise).sum().backward()
    # own power helps link 0's rate more than it hurts link 1: positive total derivative here
    assert torch.isfinite(power.grad).all()
    assert torch.autograd.gradcheck(
        lambda p: link_rates(gains, p, noise), (power.detach().clone().requires_grad_(True),)
    )
