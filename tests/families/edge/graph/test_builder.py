"""Graph builder: schema, pair order, exact and sampled metapaths, batching, feature robustness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnalloc.families.edge.generators import eua_instance, random_instance
from gnnalloc.families.edge.graph import (
    CANDIDATE_FEATURES,
    EDGE_TYPES,
    LINK_FEATURES,
    NODE_TYPES,
    SERVER_FEATURES,
    USER_FEATURES,
    build_graph,
    collate_graphs,
    metapath_edges,
)
from gnnalloc.families.edge.problem import INSTANCE_FORMAT, Instance, ProblemTensors

EXECUTE = ("user", "execute", "user")
MIGRATE = ("user", "migrate", "user")
CANDIDATE = ("user", "candidate", "server")


def _doc(servers, links, users, **extra):
    return {
        "format": INSTANCE_FORMAT,
        "servers": [
            {"id": sid, "compute": c, "bandwidth": b, **({} if sv is None else {"services": sv})}
            for sid, c, b, sv in servers
        ],
        "links": [{"a": a, "b": b, "capacity": cap} for a, b, cap in links],
        "users": [
            {"id": uid, "server": home, "service": svc, "compute_min": c, "bandwidth_min": b,
             "data_rate": 0.5, "weight": 1.0}
            for uid, home, svc, c, b in users
        ],
        **extra,
    }


def hand_made() -> Instance:
    """Chain A-B-C-D plus an isolated zero-capacity E.

    Candidates: u0 {A, B}, u1 {D}, u2 {B, C}, u3 {A, B} (C hosts only y, D only z).
    """
    return Instance.from_dict(
        _doc(
            servers=[
                ("A", 10.0, 10.0, None), ("B", 10.0, 10.0, None), ("C", 10.0, 10.0, ["y"]),
                ("D", 10.0, 10.0, ["z"]), ("E", 0.0, 0.0, None),
            ],
            links=[("A", "B", 3.0), ("B", "C", 3.0), ("C", "D", 3.0)],
            users=[
                ("u0", "A", "x", 1.0, 1.0), ("u1", "D", "z", 2.0, 1.0),
                ("u2", "C", "y", 1.0, 2.0), ("u3", "B", "x", 3.0, 1.0),
            ],
        )
    )


def edge_set(edge_index) -> set[tuple[int, int]]:
    edge_index = np.asarray(edge_index)
    return set(zip(edge_index[0].tolist(), edge_index[1].tolist()))


def symmetric(pairs) -> set[tuple[int, int]]:
    pairs = list(pairs)
    return {(a, b) for a, b in pairs} | {(b, a) for a, b in pairs}


def brute_force(instance: Instance) -> tuple[set, set]:
    """Exact metapath edge sets from dense incidence matrices."""
    member = np.zeros((instance.num_users, instance.num_servers), dtype=np.int64)
    member[instance.pair_user, instance.pair_server] = 1
    adjacency = np.zeros((instance.num_servers,) * 2, dtype=np.int64)
    adjacency[instance.link_a, instance.link_b] = adjacency[instance.link_b, instance.link_a] = 1
    execute = (member @ member.T) > 0
    migrate = (member @ adjacency @ member.T) > 0
    np.fill_diagonal(execute, False)
    np.fill_diagonal(migrate, False)
    # Edge (v -> u) for neighbour v of u; both matrices are symmetric.
    return edge_set(np.nonzero(execute)), edge_set(np.nonzero(migrate))


def test_schema_and_shapes():
    instance = random_instance(40, 6, 1.0, seed=1)
    graph = build_graph(instance)
    assert set(graph.node_types) == set(NODE_TYPES)
    assert set(graph.edge_types) == set(EDGE_TYPES)
    assert graph["user"].num_nodes == 40 and graph["server"].num_nodes == 6
    assert graph["user"].x.shape == (40, len(USER_FEATURES))
    assert graph["server"].x.shape == (6, len(SERVER_FEATURES))
    assert graph["user"].x.dtype == torch.float32
    p, l2 = instance.num_pairs, 2 * instance.num_links
    assert graph[CANDIDATE].edge_attr.shape == (p, len(CANDIDATE_FEATURES))
    assert graph["server", "rev_candidate", "user"].edge_attr.shape == (p, len(CANDIDATE_FEATURES))
    assert graph["server", "link", "server"].edge_attr.shape == (l2, len(LINK_FEATURES))
    for edge_type in EDGE_TYPES:
        assert graph[edge_type].edge_index.dtype == torch.long
        assert graph[edge_type].edge_index.shape[0] == 2
    assert torch.equal(
        graph["user"].num_candidates, torch.from_numpy(np.diff(instance.user_pair_ptr))
    )
    graph.validate(raise_on_error=True)


def test_pair_order_and_reverse_edges():
    instance = random_instance(60, 8, 1.0, seed=2)
    graph = build_graph(instance)
    candidate = graph[CANDIDATE].edge_index.numpy()
    np.testing.assert_array_equal(candidate[0], instance.pair_user)
    np.testing.assert_array_equal(candidate[1], instance.pair_server)
    np.testing.assert_array_equal(
        graph["server", "rev_candidate", "user"].edge_index.numpy(), candidate[::-1]
    )
    home = graph["user", "home", "server"].edge_index.numpy()
    np.testing.assert_array_equal(home, np.stack([np.arange(60), instance.user_server]))
    rev_home = graph["server", "rev_home", "user"].edge_index.numpy()
    np.testing.assert_array_equal(rev_home, home[::-1])
    # is_home column matches the instance's home pairs.
    is_home = graph[CANDIDATE].edge_attr[:, CANDIDATE_FEATURES.index("is_home")].numpy()
    np.testing.assert_array_equal(is_home == 1, instance.pair_link < 0)
    link = graph["server", "link", "server"].edge_index.numpy()
    assert edge_set(link) == symmetric(zip(instance.link_a.tolist(), instance.link_b.tolist()))


def test_metapaths_hand_made():
    instance = hand_made()
    candidates = [set(instance.pair_server[instance.pair_user == u].tolist()) for u in range(4)]
    assert candidates == [{0, 1}, {3}, {1, 2}, {0, 1}]
    for cap in (None, 16):
        graph = build_graph(instance, max_metapath_neighbors=cap)
        assert edge_set(graph[EXECUTE].edge_index) == symmetric({(0, 2), (0, 3), (2, 3)})
        assert edge_set(graph[MIGRATE].edge_index) == symmetric({(0, 2), (0, 3), (1, 2), (2, 3)})
    for edge_type in (EXECUTE, MIGRATE):
        edge_index = graph[edge_type].edge_index
        assert (edge_index[0] != edge_index[1]).all()
        assert edge_index.shape[1] == len(edge_set(edge_index))  # deduplicated


@pytest.mark.parametrize("seed", range(4))
def test_metapaths_exact_match_brute_force(seed):
    instance = random_instance(80, 7, 1.0, seed=seed)
    execute, migrate = metapath_edges(instance, max_metapath_neighbors=None)
    expected_execute, expected_migrate = brute_force(instance)
    assert edge_set(execute) == expected_execute
    assert edge_set(migrate) == expected_migrate
    for edge_index in (execute, migrate):
        # Sorted by target then source, no duplicates.
        key = edge_index[1] * 80 + edge_index[0]
        assert np.all(np.diff(key) > 0)


def test_metapath_sampling_cap_and_determinism():
    instance = random_instance(400, 8, 1.0, seed=5)
    expected_execute, expected_migrate = brute_force(instance)
    cap = 8
    execute, migrate = metapath_edges(instance, max_metapath_neighbors=cap, seed=3)
    for edges, expected in ((execute, expected_execute), (migrate, expected_migrate)):
        assert edge_set(edges) <= expected
        assert np.all(edges[0] != edges[1])
        assert np.bincount(edges[1], minlength=400).max() <= cap
        # Popular servers: most users keep close to `cap` neighbours.
        assert np.bincount(edges[1], minlength=400).mean() > 0.7 * cap
    again = metapath_edges(instance, max_metapath_neighbors=cap, seed=3)
    other = metapath_edges(instance, max_metapath_neighbors=cap, seed=4)
    np.testing.assert_array_equal(again[0], execute)
    np.testing.assert_array_equal(again[1], migrate)
    assert edge_set(other[0]) != edge_set(execute)
    empty = metapath_edges(instance, max_metapath_neighbors=0)
    for edges in empty:  # as the general path returns when it draws no walk
        assert edges.shape == (2, 0) and edges.dtype == np.int64
    graph = build_graph(instance, max_metapath_neighbors=0)
    for edge_type in (EXECUTE, MIGRATE):
        assert graph[edge_type].edge_index.shape == (2, 0) and graph[edge_type].edge_index.dtype == torch.long


def test_metapath_sampling_large_eua():
    instance = eua_instance(3000, 1.0, seed=0)
    graph = build_graph(instance, max_metapath_neighbors=16)
    for edge_type in (EXECUTE, MIGRATE):
        edge_index = graph[edge_type].edge_index
        assert edge_index.shape[1] <= 16 * 3000
        assert torch.bincount(edge_index[1], minlength=3000).max() <= 16
        assert (edge_index[0] != edge_index[1]).all()


def test_batching_offsets_match_problem_tensors():
    instances = [random_instance(n, s, 1.0, seed=n) for n, s in ((20, 3), (35, 6), (1, 1))]
    graphs = [build_graph(i) for i in instances]
    batch = collate_graphs(graphs)
    problem = ProblemTensors.collate([ProblemTensors.from_instance(i) for i in instances])
    assert batch.num_graphs == 3
    assert batch["user"].num_nodes == problem.num_users
    assert batch["server"].num_nodes == problem.num_servers
    candidate = batch[CANDIDATE].edge_index
    assert torch.equal(candidate[0], problem.pair_user)
    assert torch.equal(candidate[1], problem.pair_server)
    assert torch.equal(batch["user", "home", "server"].edge_index[1], problem.user_server)
    assert torch.equal(batch["user"].batch, problem.user_graph)
    user_off = np.cumsum([0] + [i.num_users for i in instances])
    for edge_type in (EXECUTE, MIGRATE):
        parts = [g[edge_type].edge_index + int(o) for g, o in zip(graphs, user_off)]
        expected = torch.cat(parts, dim=1)
        assert torch.equal(batch[edge_type].edge_index, expected)
    with pytest.raises(ValueError):
        collate_graphs([])


def extreme_instance(ratio_span: float = 1e6) -> Instance:
    """Demands spanning 1e-6..1e6 of capacity, zero-capacity and isolated servers, users with no
    candidate, no links."""
    servers = [("A", 10.0, 10.0, None), ("Z", 0.0, 0.0, None), ("I", 5.0, 0.0, ["only"])]
    users = [
        ("u0", "A", "s", 10.0 / ratio_span, 10.0 * ratio_span),
        ("u1", "A", "s", 10.0 * ratio_span, 10.0 / ratio_span),
        ("u2", "Z", "s", 1.0, 1.0),  # homed on a zero-capacity server
        ("u3", "I", "s", 1.0, 1.0),  # its home does not host "s": no candidate at all
    ]
    return Instance.from_dict(_doc(servers, [], users, penalty=1e3, alpha=0.5))


def test_features_finite_on_extremes():
    instance = extreme_instance()
    assert instance.num_links == 0 and len(instance.users_without_candidate) == 1
    graph = build_graph(instance)
    tensors = [graph["user"].x, graph["server"].x, graph[CANDIDATE].edge_attr]
    for tensor in tensors:
        assert torch.isfinite(tensor).all()
        assert tensor.abs().max() < 50
    assert graph["server", "link", "server"].edge_index.shape == (2, 0)
    assert graph["server", "link", "server"].edge_attr.shape == (0, len(LINK_FEATURES))
    assert graph[MIGRATE].edge_index.shape == (2, 0)
    server = graph["server"].x
    assert server[1, SERVER_FEATURES.index("zero_compute")] == 1
    assert server[0, SERVER_FEATURES.index("zero_compute")] == 0
    user = graph["user"].x
    assert user[3, USER_FEATURES.index("no_candidate")] == 1
    # 1e-6 and 1e6 of the home capacity are told apart, and stay O(1-10).
    col = USER_FEATURES.index("compute_min/home_compute")
    assert user[0, col] < 1e-3 and 10 < user[1, col] < 20


def test_features_scale_invariant():
    instance = random_instance(30, 5, 1.3, seed=9)
    doc = instance.to_dict()
    for s in doc["servers"]:
        s["compute"] *= 1e3
        s["bandwidth"] *= 1e-2
    for link in doc["links"]:
        link["capacity"] *= 1e3
    for u in doc["users"]:
        u["compute_min"] *= 1e3
        u["bandwidth_min"] *= 1e-2
        u["weight"] *= 7.0
    scaled = Instance.from_dict(doc)
    a, b = build_graph(instance), build_graph(scaled)
    for key in ("user", "server"):
        torch.testing.assert_close(a[key].x, b[key].x, atol=1e-4, rtol=1e-4)
    for edge_type in (CANDIDATE, ("server", "link", "server")):
        torch.testing.assert_close(
            a[edge_type].edge_attr, b[edge_type].edge_attr, atol=1e-4, rtol=1e-4
        )


def test_tiny_instances():
    one = random_instance(1, 1, 1.0, seed=0)
    graph = build_graph(one)
    assert graph["user"].x.shape == (1, len(USER_FEATURES))
    assert graph[EXECUTE].edge_index.shape == (2, 0)
    assert torch.isfinite(graph["user"].x).all()
    nobody = Instance.from_dict(_doc([("A", 1.0, 1.0, None)], [], []))
    graph = build_graph(nobody)
    assert graph["user"].num_nodes == 0
    assert graph["user"].x.shape == (0, len(USER_FEATURES))
    assert graph[CANDIDATE].edge_index.shape == (2, 0)
