"""The power family's learned allocator: link batches, the sparse WMMSE step, the graph, the
model, its checkpoints and its Lightning shells."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gnnalloc.families.power import functional as F
from gnnalloc.families.power._generators import d2d, gaussian
from gnnalloc.families.power._graph import (
    EDGE_TYPES, LINK_FEATURES, collate_link_graphs, instance_graph, link_batch,
)
from gnnalloc.families.power._baselines import greedy_schedule
from gnnalloc.families.power._learned import allocate_powers
from gnnalloc.families.power._links import graph_utility, line_search, link_rates, wmmse_step
from gnnalloc.families.power._model import PowerAllocator
from gnnalloc.families.power._normalised import NormalisedProblem


def _dense(instance):
    g = instance.gain_matrix() * instance.pmax[None, :] / instance.noise
    return np.diag(g).copy(), g - np.diag(np.diag(g))


def _dense_wmmse_step(snr, cross, q, a):
    """The textbook WMMSE update (Shi et al. 2011) in normalised units, dense numpy."""
    h, v = np.sqrt(snr), np.sqrt(q)
    received = 1.0 + snr * q + cross @ q
    u = h * v / received
    w = 1.0 / (1.0 - u * h * v)
    spread = a * w * u * u * snr + cross.T @ (a * w * u * u)
    return np.clip(a * w * u * h / spread, 0.0, 1.0) ** 2


@pytest.mark.parametrize("make", [lambda: gaussian(7, 3), lambda: d2d(30, 4)])
def test_rates_and_step_match_dense_formulas(make):
    instance = make()
    links = link_batch(instance_graph(instance))
    rng = np.random.default_rng(0)
    q = rng.uniform(0.05, 1.0, instance.num_links)
    rates = link_rates(links, torch.from_numpy(q)).numpy()
    reference = F.link_rates(
        torch.from_numpy(instance.gain_matrix())[None], torch.from_numpy(q * instance.pmax)[None], instance.noise
    )[0].numpy()
    np.testing.assert_allclose(rates, reference, rtol=1e-9)
    snr, cross = _dense(instance)
    stepped = wmmse_step(links, torch.from_numpy(q)).numpy()
    np.testing.assert_allclose(stepped, _dense_wmmse_step(snr, cross, q, np.ones_like(q)), rtol=1e-9, atol=1e-12)


def test_wmmse_step_never_lowers_the_weighted_sum_rate():
    links = link_batch(collate_link_graphs([instance_graph(d2d(40, s)) for s in range(3)]))
    q = torch.ones(links.num_links, dtype=torch.float64)
    values = []
    for _ in range(30):
        values.append(graph_utility(links, q))
        q = wmmse_step(links, q)
    values = torch.stack(values)
    assert bool((values[1:] >= values[:-1] - 1e-9 * values[:-1].abs()).all())


def test_graph_is_scale_free_and_edges_are_sorted():
    instance = d2d(60, 1)
    graph = instance_graph(instance)
    scaled = type(instance).from_dict(
        {**instance.to_dict(), "noise": instance.noise * 1e3,
         "links": [{**link, "gain": link["gain"] * 1e3} for link in instance.to_dict()["links"]],
         "interference": [{**e, "gain": e["gain"] * 1e3} for e in instance.to_dict()["interference"]]}
    )
    torch.testing.assert_close(instance_graph(scaled)["link"].x, graph["link"].x)
    assert graph["link"].x.shape[1] == len(LINK_FEATURES)
    links = link_batch(graph)
    key = links.rx * links.num_links + links.tx
    assert bool((key[1:] > key[:-1]).all())
    dense = links.matrix.to_dense()
    torch.testing.assert_close(links.matrix_t.to_dense(), dense.T)
    batched = link_batch(collate_link_graphs([graph, instance_graph(d2d(20, 2))]))
    torch.testing.assert_close(batched.matrix_t.to_dense(), batched.matrix.to_dense().T)


def test_message_edges_are_a_pruned_subset():
    graph = instance_graph(d2d(200, 5))
    full = graph["link", "gain", "link"].edge_index.shape[1]
    kept = graph[EDGE_TYPES[0]].edge_index.shape[1]
    assert 0 < kept < full
    rev = graph[EDGE_TYPES[1]].edge_index
    torch.testing.assert_close(rev, graph[EDGE_TYPES[0]].edge_index.flip(0))


def test_batched_forward_equals_separate_forwards():
    torch.manual_seed(0)
    model = PowerAllocator(hidden=16, heads=2, layers=2, refine_steps=3).eval()
    graphs = [instance_graph(gaussian(10, 1)), instance_graph(d2d(25, 2)), instance_graph(d2d(5, 3, utility="alpha_fair"))]
    # The encoder and a fixed number of refinement steps (shares() stops when every instance of
    # its batch has converged, so its step count depends on the batch).
    together = model(collate_link_graphs(graphs))[-1]
    apart = torch.cat([model(g)[-1] for g in graphs])
    torch.testing.assert_close(together, apart, rtol=1e-5, atol=1e-6)


def test_gradients_reach_the_encoder_through_the_refinement():
    model = PowerAllocator(hidden=16, heads=2, layers=1, refine_steps=4)
    graph = collate_link_graphs([instance_graph(d2d(20, s)) for s in range(2)])
    shares = model(graph)[-1]
    graph_utility(link_batch(graph), shares).sum().backward()
    grads = [p.grad for p in model.encoder.inputs.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("utility", ["sum_rate", "alpha_fair"])
def test_allocation_is_feasible_and_never_below_full_power(utility):
    model = PowerAllocator(hidden=16, heads=2, layers=1, refine_steps=2).eval()
    for seed in range(4):
        instance = d2d(30, seed, utility=utility)
        power = allocate_powers(model, instance).power
        assert power.shape == (instance.num_links,)
        assert (power >= 0).all() and (power <= instance.pmax).all()
        links = link_batch(instance_graph(instance))
        mine = float(graph_utility(links, torch.from_numpy(power / instance.pmax)).sum())
        full = float(graph_utility(links, torch.ones(instance.num_links, dtype=torch.float64)).sum())
        assert mine >= full - 1e-9 * abs(full)


@pytest.mark.parametrize("utility", ["sum_rate", "alpha_fair"])
def test_step_utility_equals_the_utility_of_its_input(utility):
    links = link_batch(instance_graph(d2d(30, 5, utility=utility)))
    q = torch.rand(links.num_links, 3, dtype=torch.float64)
    stepped, per_link = wmmse_step(links, q, with_utility=True)
    torch.testing.assert_close(stepped, wmmse_step(links, q))
    torch.testing.assert_close(per_link.sum(0), graph_utility(links, q)[0])


def test_allocation_is_never_below_the_greedy_schedule():
    model = PowerAllocator(hidden=16, heads=2, layers=1, refine_steps=2).eval()
    for seed in range(3):
        instance = d2d(40, seed)
        links = link_batch(instance_graph(instance))
        mine = allocate_powers(model, instance).power / instance.pmax
        greedy = greedy_schedule(NormalisedProblem.of(instance))
        assert float(graph_utility(links, torch.from_numpy(mine)).sum()) >= (
            float(graph_utility(links, greedy.to(torch.float64)).sum()) * (1 - 1e-9)
        )


def test_fair_line_search_never_lowers_the_utility():
    links = link_batch(collate_link_graphs([instance_graph(d2d(30, s, utility="alpha_fair")) for s in range(2)]))
    q = torch.ones(links.num_links, 2, dtype=torch.float64)
    value = graph_utility(links, q)
    for _ in range(20):
        q = line_search(links, q, wmmse_step(links, q), value)
        new = graph_utility(links, q)
        assert bool((new >= value).all())
        value = new


def test_extra_starts_of_the_wrong_shape_are_named():
    model = PowerAllocator(hidden=16, heads=2, layers=1, refine_steps=2).eval()
    graph = instance_graph(d2d(10, 0))
    with pytest.raises(ValueError, match="starts"):
        model.shares(graph, starts=torch.ones(9, 1))


def test_checkpoint_round_trip_and_named_errors():
    torch.manual_seed(1)
    model = PowerAllocator(hidden=16, heads=2, layers=1, refine_steps=2).eval()
    data = model.checkpoint_dict(note="test")
    restored = PowerAllocator.from_checkpoint_data(data)
    graph = instance_graph(d2d(15, 0))
    torch.testing.assert_close(restored.shares(graph), model.shares(graph))
    with pytest.raises(ValueError, match="hyper_parameters.hidden"):
        PowerAllocator.from_checkpoint_data({**data, "hyper_parameters": {**data["hyper_parameters"], "hidden": 2**40}})
    with pytest.raises(ValueError, match="'edge' family"):
        PowerAllocator.from_checkpoint_data({**data, "family": "edge"})
    bad = dict(data["state_dict"])
    name = next(iter(bad))
    bad[name] = bad[name] * math.nan
    with pytest.raises(ValueError, match="not a finite tensor"):
        PowerAllocator.from_checkpoint_data({**data, "state_dict": bad})
    with pytest.raises(ValueError, match="does not match"):
        PowerAllocator.from_checkpoint_data({**data, "hyper_parameters": {**data["hyper_parameters"], "hidden": 32}})
