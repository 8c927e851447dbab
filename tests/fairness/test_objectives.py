"""Objectives of per-unit utilities: shapes, values, gradients only where they belong."""

from __future__ import annotations

import pytest
import torch

from gnnalloc.fairness import bottom_mean, efficiency_fairness, group_objectives, log_mean, unit_objectives


def test_unit_objectives_are_the_utilities():
    u = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(unit_objectives(u), u)
    with pytest.raises(ValueError, match="utility"):
        unit_objectives(u.view(3, 1))


def test_group_objectives_are_group_means():
    u = torch.tensor([1.0, 3.0, 10.0, 0.0, 2.0])
    group = torch.tensor([0, 0, 2, 2, 2])
    out = group_objectives(u, group)
    assert out.shape == (3,)
    assert torch.allclose(out, torch.tensor([2.0, 0.0, 4.0]))  # group 1 empty: 0
    with pytest.raises(ValueError, match="group"):
        group_objectives(u, group[:3])


def test_bottom_mean_takes_each_groups_lowest_share():
    u = torch.arange(20, dtype=torch.float64).flip(0).requires_grad_()  # 19 ... 0
    group = torch.tensor([0] * 10 + [1] * 10)
    # group 0 holds 19..10 (lowest: 10), group 1 holds 9..0 (lowest: 0); share 0.1 -> one each.
    value = bottom_mean(u, group, share=0.1)
    assert float(value) == pytest.approx(5.0)
    value.backward()
    assert set(torch.nonzero(u.grad).flatten().tolist()) == {9, 19}
    assert float(bottom_mean(u.detach(), None, share=0.2)) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="share"):
        bottom_mean(u, group, share=0.0)


def test_efficiency_fairness_pair():
    u = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 20.0])
    group = torch.tensor([0, 0, 0, 0, 1, 1])
    pair = efficiency_fairness(u, group, share=0.25)
    assert pair.shape == (2,)
    assert torch.allclose(pair, torch.tensor([(2.5 + 15.0) / 2, (1.0 + 10.0) / 2]))
    assert torch.allclose(efficiency_fairness(u), torch.tensor([40.0 / 6, 1.0]))


def test_the_log_fairness_term_is_the_mean_log_per_group():
    u = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 20.0], dtype=torch.float64, requires_grad=True)
    group = torch.tensor([0, 0, 0, 0, 1, 1])
    value = log_mean(u, group, offset=0.5)
    expected = (torch.log(torch.tensor([1.5, 2.5, 3.5, 4.5])).mean() + torch.log(torch.tensor([0.5, 20.5])).mean()) / 2
    assert float(value) == pytest.approx(float(expected))
    value.backward()
    # Every unit gets gradient, the least served most: 1 / (u + offset) over the group's size and the groups.
    torch.testing.assert_close(u.grad, torch.tensor([1 / 1.5 / 8, 1 / 2.5 / 8, 1 / 3.5 / 8, 1 / 4.5 / 8, 1 / 0.5 / 4, 1 / 20.5 / 4],
                                                    dtype=torch.float64))
    pair = efficiency_fairness(u.detach(), group, fairness_term="log", log_offset=0.5)
    torch.testing.assert_close(pair, torch.stack([torch.tensor((2.5 + 10.0) / 2, dtype=torch.float64), value.detach()]))


@pytest.mark.parametrize(("call", "field"), [
    (lambda u: log_mean(-u), "utility"), (lambda u: log_mean(u, offset=0.0), "offset"),
    (lambda u: efficiency_fairness(u, fairness_term="jain"), "fairness_term"),
])
def test_the_log_fairness_term_names_bad_input(call, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        call(torch.tensor([1.0, 2.0]))
