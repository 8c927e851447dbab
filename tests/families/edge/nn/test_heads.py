"""Decision heads: non-negative finite shares of capacity, pair order, proportional-share start."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gnnalloc.families.edge.generators import random_instance
from gnnalloc.families.edge.graph import CANDIDATE_FEATURES, build_graph, collate_graphs
from gnnalloc.families.edge.graph import SCHEMA
from gnnalloc.families.edge.nn import DecisionHeads
from gnnalloc.nn import HANEncoder
from gnnalloc.families.edge.problem import INSTANCE_FORMAT, Instance, ProblemTensors

HIDDEN = 16


def run(instance: Instance, dtype: torch.dtype = torch.float64, heads: DecisionHeads | None = None):
    torch.manual_seed(0)
    graph = build_graph(instance)
    problem = ProblemTensors.from_instance(instance, dtype=dtype)
    emb = HANEncoder(SCHEMA, hidden=HIDDEN, heads=2, layers=1)(graph)
    user, server = emb["user"], emb["server"]
    heads = heads or DecisionHeads(HIDDEN)
    return heads(user, server, graph, problem), problem


def test_shapes_dtype_nonnegative():
    instance = random_instance(40, 6, 1.0, seed=0)
    for dtype in (torch.float64, torch.float32):
        (x, y), _ = run(instance, dtype)
        assert x.shape == (instance.num_pairs,) and y.shape == (40,)
        assert x.dtype == dtype and y.dtype == dtype
        assert (x >= 0).all() and (y >= 0).all()
        assert torch.isfinite(x).all() and torch.isfinite(y).all()


def test_servers_exhausted_and_start_near_proportional_share():
    instance = random_instance(60, 7, 1.5, seed=1)
    (x, y), problem = run(instance, heads=DecisionHeads(HIDDEN, bandwidth="learned"))
    x, y = x.detach().numpy(), y.detach().numpy()
    used = np.bincount(instance.pair_server, x, instance.num_servers)
    has_pairs = np.bincount(instance.pair_server, minlength=instance.num_servers) > 0
    np.testing.assert_allclose(used[has_pairs], instance.server_compute[has_pairs], rtol=1e-10)
    has_home = np.bincount(instance.user_server, minlength=instance.num_servers) > 0
    np.testing.assert_allclose(
        np.bincount(instance.user_server, y, instance.num_servers)[has_home],
        instance.server_bandwidth[has_home],
        rtol=1e-10,
    )
    home_weight = np.exp(2.0 * (instance.pair_link < 0))  # the initial home bias
    claims = instance.compute_min[instance.pair_user] * home_weight
    share = instance.server_compute[instance.pair_server] * claims / np.bincount(
        instance.pair_server, claims, 7
    )[instance.pair_server]
    np.testing.assert_allclose(x, share, rtol=0.05)
    home = np.bincount(instance.user_server, instance.bandwidth_min, 7)[instance.user_server]
    expected = instance.server_bandwidth[instance.user_server] * instance.bandwidth_min / home
    np.testing.assert_allclose(y, expected, rtol=0.05)


class _IsHomeScore(nn.Module):
    """Score = 3 * is_home, read from the pair's own candidate edge features."""

    def forward(self, pair_input: torch.Tensor) -> torch.Tensor:
        return 3.0 * pair_input[:, 2 * HIDDEN + CANDIDATE_FEATURES.index("is_home")].unsqueeze(-1)


def test_pair_order():
    instance = random_instance(50, 6, 1.0, seed=2)
    heads = DecisionHeads(HIDDEN)
    heads.pair_score = _IsHomeScore()
    (x, _), _ = run(instance, heads=heads)
    bounded = heads.max_score * np.tanh(3.0 / heads.max_score)  # the heads' soft clamp
    logit = (bounded + heads.home_bias.item()) * (instance.pair_link < 0)
    claims = instance.compute_min[instance.pair_user] * np.exp(logit)
    expected = instance.server_compute[instance.pair_server] * claims / np.bincount(
        instance.pair_server, claims, 6
    )[instance.pair_server]
    np.testing.assert_allclose(x.detach().numpy(), expected, rtol=1e-5)  # float32 scores


def test_batch_equals_separate():
    instances = [random_instance(n, s, 1.0, seed=n) for n, s in ((10, 3), (25, 4))]
    torch.manual_seed(0)
    encoder, heads = HANEncoder(SCHEMA, hidden=HIDDEN, heads=2, layers=1).eval(), DecisionHeads(HIDDEN)
    graphs = [build_graph(i) for i in instances]
    problems = [ProblemTensors.from_instance(i) for i in instances]
    batch, problem = collate_graphs(graphs), ProblemTensors.collate(problems)
    x, y = heads(*encoder(batch).values(), batch, problem)
    parts = [heads(*encoder(g).values(), g, p) for g, p in zip(graphs, problems)]
    torch.testing.assert_close(x, torch.cat([a for a, _ in parts]))
    torch.testing.assert_close(y, torch.cat([b for _, b in parts]))


def test_extremes_zero_capacity_and_no_candidates():
    servers = [
        {"id": "A", "compute": 10.0, "bandwidth": 10.0},
        {"id": "Z", "compute": 0.0, "bandwidth": 0.0},
        {"id": "I", "compute": 5.0, "bandwidth": 5.0, "services": ["other"]},
    ]
    users = [
        {"id": "u0", "server": "A", "service": "s", "compute_min": 1e-5, "bandwidth_min": 1e7},
        {"id": "u1", "server": "A", "service": "s", "compute_min": 1e7, "bandwidth_min": 1e-5},
        {"id": "u2", "server": "Z", "service": "s", "compute_min": 1.0, "bandwidth_min": 1.0},
        {"id": "u3", "server": "I", "service": "s", "compute_min": 1.0, "bandwidth_min": 1.0},
    ]
    instance = Instance.from_dict(
        {"format": INSTANCE_FORMAT, "servers": servers, "users": users,
         "links": [{"a": "A", "b": "Z", "capacity": 1.0}]}
    )
    (x, y), _ = run(instance)
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    assert (x[torch.from_numpy(instance.pair_server) == 1] == 0).all()
    assert y[2] == 0 and y[3] > 0


def test_gradients_and_mismatch():
    instance = random_instance(20, 3, 1.0, seed=4)
    heads = DecisionHeads(HIDDEN)
    (x, y), problem = run(instance, heads=heads)
    (x.log1p().sum() + y.log1p().sum()).backward()
    for name, p in heads.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        # The last bias shifts every score of a server alike, which its softmax ignores: its
        # gradient is zero up to the tanh clamp's curvature (and float32 rounds that to 0).
        if name != "pair_score.2.bias":
            assert p.grad.abs().sum() > 0, name
    other = ProblemTensors.from_instance(random_instance(21, 3, 1.0, seed=4))
    graph = build_graph(instance)
    with pytest.raises(ValueError):
        heads(torch.zeros(20, HIDDEN), torch.zeros(3, HIDDEN), graph, other)


def test_waterfill_bandwidth_is_the_exact_per_server_optimum():
    from gnnalloc.families.edge.solvers import waterfill

    instance = random_instance(50, 5, 1.3, seed=4)
    (_, y), _ = run(instance)
    y = y.detach().numpy()
    for s in range(instance.num_servers):
        users = np.flatnonzero(instance.user_server == s)
        if users.size == 0:
            continue
        ref = waterfill(instance.server_bandwidth[s], instance.bandwidth_min[users],
                        instance.weight[users], instance.penalty)
        np.testing.assert_allclose(y[users], ref, rtol=1e-9, atol=1e-12)


def test_unknown_bandwidth_mode():
    with pytest.raises(ValueError, match="bandwidth"):
        DecisionHeads(HIDDEN, bandwidth="guess")
