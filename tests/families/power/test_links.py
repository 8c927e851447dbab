"""One implementation of the iterative maths: the sparse (model) and dense (solvers) link forms
give the same rates, slopes, WMMSE and FP steps and line search, equal to the functional rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnalloc.families.power import NormalisedProblem, d2d, functional as F, gaussian
from gnnalloc.families.power._links import (
    LinkBatch, _transposed, fp_step, graph_utility, lift_to_floor, line_search, link_rates, utility_slope,
    wmmse_step,
)

INSTANCES = {
    "gaussian-sum": lambda: gaussian(9, 2),
    "d2d-sum": lambda: d2d(40, 3),
    "d2d-fair": lambda: d2d(40, 3, utility="alpha_fair", rate_min=0.3, alpha=2.0, penalty=20.0),
}


@pytest.fixture(params=sorted(INSTANCES))
def forms(request):
    instance = INSTANCES[request.param]()
    return instance, LinkBatch.of(instance), NormalisedProblem.of(instance).links


def _shares(k: int, columns: int = 3) -> torch.Tensor:
    return torch.rand(k, columns, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.95 + 0.05


def test_sparse_and_dense_forms_agree(forms):
    instance, sparse, dense = forms
    q = _shares(instance.num_links)
    for fn in (link_rates, graph_utility, wmmse_step, fp_step):
        torch.testing.assert_close(fn(sparse, q), fn(dense, q), rtol=1e-10, atol=1e-12)
    rates = link_rates(sparse, q)
    torch.testing.assert_close(utility_slope(sparse, rates), utility_slope(dense, rates))
    value = graph_utility(sparse, q)
    torch.testing.assert_close(
        line_search(sparse, q, wmmse_step(sparse, q), value), line_search(dense, q, wmmse_step(dense, q), value)
    )


def test_rates_equal_the_functional_form(forms):
    instance, sparse, _ = forms
    q = _shares(instance.num_links, 1)[:, 0]
    expected = F.link_rates(
        torch.from_numpy(instance.gain_matrix())[None], (q * torch.from_numpy(instance.pmax))[None], instance.noise
    )[0]
    torch.testing.assert_close(link_rates(sparse, q), expected, rtol=1e-10, atol=1e-12)


def test_slope_is_the_derivative_of_the_utility(forms):
    instance, sparse, _ = forms
    rates = link_rates(sparse, _shares(instance.num_links, 1)[:, 0]).requires_grad_(True)
    weight = torch.from_numpy(instance.weight)
    rate_min = None if instance.rate_min is None else torch.from_numpy(instance.rate_min)
    utility = F.link_utility(rates, weight, rate_min, instance.alpha, instance.penalty, instance.utility)
    (grad,) = torch.autograd.grad(utility.sum(), rates)
    torch.testing.assert_close(utility_slope(sparse, rates.detach()), grad)


def test_fp_and_wmmse_steps_are_the_same_map(forms):
    # With y_k^2 = a_k u_k^2 the two closed-form updates coincide (Shen & Yu 2018).
    instance, sparse, _ = forms
    q = _shares(instance.num_links)
    torch.testing.assert_close(fp_step(sparse, q), wmmse_step(sparse, q), rtol=1e-9, atol=1e-12)


def test_line_search_is_monotone_and_keeps_improving_full_steps():
    instance = d2d(30, 5, utility="alpha_fair", rate_min=0.5, penalty=30.0)
    links = LinkBatch.of(instance)
    q = _shares(instance.num_links, 4)
    for _ in range(20):
        value = graph_utility(links, q)
        step = wmmse_step(links, q)
        searched = line_search(links, q, step, value)
        new = graph_utility(links, searched)
        assert (new >= value).all()
        improving = (graph_utility(links, step) > value)[0]
        assert torch.equal(searched[:, improving], step[:, improving])
        q = searched
    assert np.isfinite(graph_utility(links, q).numpy()).all()


def test_line_search_value_is_the_utility_of_its_answer():
    instance = d2d(30, 6, utility="alpha_fair", rate_min=0.5, penalty=30.0)
    links = LinkBatch.of(instance)
    q = _shares(instance.num_links, 4)
    for _ in range(5):
        q, value = line_search(links, q, wmmse_step(links, q), graph_utility(links, q), return_value=True)
        torch.testing.assert_close(value, graph_utility(links, q))


def test_the_graph_and_the_link_batch_share_one_normalisation():
    from gnnalloc.families.power._graph import instance_graph, link_batch

    # rate_min matters (and is stored) only for the alpha-fair utility
    instance = d2d(40, 8, utility="alpha_fair", rate_min=0.3)
    a, b = LinkBatch.of(instance), link_batch(instance_graph(instance))
    for name in ("snr", "rx", "tx", "inr", "weight", "rate_min"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("counting", [True, False], ids=["scipy-counting", "torch-sort"])
def test_transposed_matrix_is_the_transpose(counting):
    """Both routes to :math:`A^\\top` (scipy's counting pass on CPU; the sort used on other
    devices and when the values carry gradients) give the dense transpose, rows ascending."""
    for instance in (d2d(60, 5), gaussian(7, 1), d2d(3, 2)):
        links = LinkBatch.of(instance)
        matrix = links.matrix
        if not counting:  # values that need gradients take the sorting route on any device
            matrix = torch.sparse_csr_tensor(
                matrix.crow_indices(), matrix.col_indices(), matrix.values().clone().requires_grad_(),
                matrix.shape, check_invariants=True,
            )
        transposed = _transposed(matrix)
        torch.testing.assert_close(transposed.to_dense(), matrix.to_dense().T, rtol=0, atol=0)
        crow, col = transposed.crow_indices(), transposed.col_indices()
        for row in range(instance.num_links):
            cols = col[crow[row]:crow[row + 1]]
            assert bool((cols[1:] > cols[:-1]).all())


def test_pairs_in_any_order_give_the_same_problem():
    """Cross gains listed out of (rx, tx) order are flagged and sorted: the graph, the sparse
    products and the utility equal those of the ordered listing."""
    from dataclasses import replace

    from gnnalloc.families.power._graph import instance_graph, link_batch

    ordered = d2d(30, 4)
    shuffle = np.random.default_rng(0).permutation(ordered.cross_rx.size)
    shuffled = replace(ordered, cross_rx=ordered.cross_rx[shuffle], cross_tx=ordered.cross_tx[shuffle],
                       cross_gain=ordered.cross_gain[shuffle])
    assert ordered.pairs_in_order and not shuffled.pairs_in_order
    q = _shares(ordered.num_links)
    for build in (LinkBatch.of, lambda i: link_batch(instance_graph(i))):
        a, b = build(ordered), build(shuffled)
        torch.testing.assert_close(a.matrix.to_dense(), b.matrix.to_dense(), rtol=0, atol=0)
        torch.testing.assert_close(wmmse_step(a, q), wmmse_step(b, q), rtol=0, atol=0)
    ga, gb = instance_graph(ordered), instance_graph(shuffled)
    for key in ga.edge_types:
        assert torch.equal(ga[key].edge_index, gb[key].edge_index)
    assert torch.equal(ga["link"].x, gb["link"].x)


@pytest.mark.parametrize("floor", [1e-3, 0.05])
def test_lift_to_floor_reaches_the_floor_with_the_least_power(floor):
    instance = d2d(60, 11)
    links = LinkBatch.of(instance)
    q = (torch.rand(60, generator=torch.Generator().manual_seed(2), dtype=torch.float64) > 0.5).double()
    lifted = lift_to_floor(links, q, floor, max_off=0.05)
    rates = link_rates(links, lifted)
    assert bool((lifted >= q).all()) and bool((lifted <= 1.0).all())
    short = rates < floor * (1 - 1e-6)
    # At most floor(0.05 * 59) = 2 links are left below, plus any that full power cannot lift.
    assert int((short & (lifted < 1.0)).sum()) <= 2
    # Least power: a raised link sits exactly at the floor (lowering it would lose the floor).
    raised = (lifted > q) & (lifted < 1.0)
    assert bool(raised.any())
    torch.testing.assert_close(rates[raised], torch.full_like(rates[raised], floor), rtol=1e-6, atol=0.0)


def test_lift_to_floor_leaves_the_costliest_links_per_instance():
    from gnnalloc.families.power._graph import collate_link_graphs, instance_graph, link_batch

    instances = [d2d(41, 5), gaussian(10, 6)]
    batch = link_batch(collate_link_graphs([instance_graph(i) for i in instances]))
    q = torch.zeros(51, dtype=torch.float64)
    q[::3] = 1.0
    lifted = lift_to_floor(batch, q, 0.01, max_off=0.05)
    for index, instance in enumerate(instances):  # the same as lifting each instance alone
        alone = instance_graph(instance)
        part = batch.batch == index
        torch.testing.assert_close(lifted[part], lift_to_floor(link_batch(alone), q[part], 0.01, max_off=0.05))
    kept = (lifted == q) & (link_rates(batch, lifted) < 0.01)
    assert int(kept[batch.batch == 0].sum()) <= 2 and int(kept[batch.batch == 1].sum()) == 0  # floor(0.05 * 9) = 0
    with pytest.raises(ValueError, match="rate"):
        lift_to_floor(batch, q, 0.0)
    with pytest.raises(ValueError, match="max_off"):
        lift_to_floor(batch, q, 0.01, max_off=1.0)
