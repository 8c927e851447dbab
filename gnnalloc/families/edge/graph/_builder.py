r"""The heterogeneous graph of an instance, built with array operations only.

Node types are ``user`` (``U`` nodes) and ``server`` (``S`` nodes); features are described in
:mod:`gnnalloc.families.edge.graph._features`. Edge types (all always present, possibly with zero edges, so that
every graph has the same schema and a model has the same computation graph on each):

=============================== ============================================ ================
edge type                       edges                                        ``edge_attr``
=============================== ============================================ ================
``(user, home, server)``        ``u -> home(u)``, edge ``i`` is user ``i``   --
``(server, rev_home, user)``    the reverse                                  --
``(user, candidate, server)``   ``pair_user[p] -> pair_server[p]``, edge     ``CANDIDATE_FEATURES``
                                ``i`` is pair ``i`` (instance pair order)
``(server, rev_candidate, user)`` the reverse, same order                    ``CANDIDATE_FEATURES``
``(server, link, server)``      ``a -> b`` for every link, then ``b -> a``   ``LINK_FEATURES``
``(user, execute, user)``       ``v -> u``: ``u, v`` share a candidate       --
                                server (metapath user-server-user)
``(user, migrate, user)``       ``v -> u``: a candidate server of ``u`` and  --
                                one of ``v`` are linked (user-server-server-user)
=============================== ============================================ ================

**Metapath sampling.** The metapath graphs grow with the square of server popularity (20,000
users on the 125 EUA sites share each candidate server with about a thousand others, i.e. about
10^8 execute paths), so each user ``u`` keeps at most ``K = max_metapath_neighbors`` incoming
neighbours per metapath:

* let :math:`T_u` be the number of metapath instances (walks) starting at ``u`` that end at
  another user (for *execute*, :math:`T_u = \sum_{s \in K_u} (n_s - 1)` with :math:`n_s` the
  number of pairs at server ``s``; for *migrate*, :math:`\sum_{s \in K_u} \sum_{t \sim s} n_t`);
* if :math:`T_u \le K` every walk is enumerated, so the neighbourhood is exact;
* otherwise ``K`` walks are drawn uniformly with replacement. A neighbour is thus kept with
  probability increasing in the number of walks joining it to ``u`` (servers shared, links
  between their candidates), which favours the users ``u`` competes with most.

Walks are decoded from their index with two ``searchsorted`` calls over cumulative walk counts,
so the cost is :math:`O((U K + P + L) \log P)` whatever the popularity. Self-loops are removed
and edges deduplicated, so a user has at most ``K`` incoming edges per metapath; edges are sorted
by target then source. The draw is deterministic given ``seed`` (independent streams for the two
metapaths). Sampled metapath graphs are directed (``v`` may be sampled for ``u`` but not ``u``
for ``v``); without a cap (``max_metapath_neighbors=None``) they are the exact symmetric graphs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, HeteroData

from gnnalloc.core import InputError
from gnnalloc.families.edge.graph._features import (
    CANDIDATE_FEATURES,
    LINK_FEATURES,
    SERVER_FEATURES,
    USER_FEATURES,
    graph_features,
)
from gnnalloc.families.edge.problem import Instance
from gnnalloc.nn import GraphSchema

__all__ = [
    "NODE_TYPES",
    "EDGE_TYPES",
    "METADATA",
    "SCHEMA",
    "DEFAULT_MAX_METAPATH_NEIGHBORS",
    "build_graph",
    "collate_graphs",
    "metapath_edges",
]

NODE_TYPES: tuple[str, ...] = ("user", "server")
HOME = ("user", "home", "server")
REV_HOME = ("server", "rev_home", "user")
CANDIDATE = ("user", "candidate", "server")
REV_CANDIDATE = ("server", "rev_candidate", "user")
LINK = ("server", "link", "server")
EXECUTE = ("user", "execute", "user")
MIGRATE = ("user", "migrate", "user")
EDGE_TYPES: tuple[tuple[str, str, str], ...] = (
    HOME, REV_HOME, CANDIDATE, REV_CANDIDATE, LINK, EXECUTE, MIGRATE,
)
#: ``(node types, edge types)`` in the format of :meth:`HeteroData.metadata`.
METADATA = (list(NODE_TYPES), list(EDGE_TYPES))
#: Input widths of the node types and edge-feature widths of the relations, for the encoder.
SCHEMA = GraphSchema(
    node_features={"user": len(USER_FEATURES), "server": len(SERVER_FEATURES)},
    edge_features={
        e: {CANDIDATE: len(CANDIDATE_FEATURES), REV_CANDIDATE: len(CANDIDATE_FEATURES),
            LINK: len(LINK_FEATURES)}.get(e, 0)
        for e in EDGE_TYPES
    },
)
DEFAULT_MAX_METAPATH_NEIGHBORS = 16


class _Walks:
    """Index structures shared by both metapaths."""

    def __init__(self, instance: Instance) -> None:
        self.num_users = instance.num_users
        self.pair_user = instance.pair_user
        self.pair_server = instance.pair_server
        self.user_ptr = instance.user_pair_ptr
        num_servers, num_pairs = instance.num_servers, instance.num_pairs
        # Pairs grouped by server (users ascending within a server, as the sort is stable).
        order = np.argsort(self.pair_server, kind="stable")
        self.server_users = self.pair_user[order]
        self.server_count = np.bincount(self.pair_server, minlength=num_servers)
        self.server_ptr = np.concatenate([[0], np.cumsum(self.server_count)]).astype(np.int64)
        rank = np.empty(num_pairs, dtype=np.int64)
        rank[order] = np.arange(num_pairs)
        self.pair_position = rank - self.server_ptr[self.pair_server]
        # Directed links grouped by source server.
        src = np.concatenate([instance.link_a, instance.link_b]).astype(np.int64)
        dst = np.concatenate([instance.link_b, instance.link_a]).astype(np.int64)
        order = np.argsort(src, kind="stable")
        self.adj_dst = dst[order]
        self.adj_ptr = np.concatenate(
            [[0], np.cumsum(np.bincount(src, minlength=num_servers))]
        ).astype(np.int64)


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """Exclusive-then-inclusive prefix sums ``[0, w0, w0+w1, ...]``, int64."""
    return np.concatenate([[0], np.cumsum(weights, dtype=np.int64)]).astype(np.int64)


def _locate(cum: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bucket ``b`` with ``cum[b] <= index < cum[b + 1]`` and the offset ``index - cum[b]``."""
    bucket = np.searchsorted(cum[1:], index, side="right")
    return bucket, index - cum[bucket]


def _walk_indices(
    totals: np.ndarray, max_neighbors: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Which walks to decode: every walk of users with ``T_u <= K``, else ``K`` uniform draws.

    Returns the start user of each walk and the walk's index among that user's walks.
    """
    if max_neighbors is None:
        exact = np.ones(totals.shape[0], dtype=bool)
    else:
        exact = totals <= max_neighbors
    counts = np.where(exact, totals, max_neighbors or 0)
    users = np.repeat(np.arange(totals.shape[0], dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(users.shape[0], dtype=np.int64) - np.repeat(starts, counts)
    sampled = ~exact[users]
    span = totals[users[sampled]]
    # Walk counts stay far below 2**53, so float draws scaled to them are exact enough.
    draws = (rng.random(span.shape[0]) * span).astype(np.int64)
    local[sampled] = np.minimum(draws, span - 1)
    return users, local


def _finish(users: np.ndarray, others: np.ndarray, num_users: int) -> np.ndarray:
    """Drop self-loops, deduplicate, sort by target then source; edges ``other -> user``."""
    n = max(num_users, 1)
    keep = users != others
    # Keys arrive grouped by target (walks are generated user by user): the stable sort (timsort,
    # which merges those runs) is several times faster on them than the default introsort.
    key = np.sort(users[keep] * n + others[keep], kind="stable")
    # A plain sort then adjacent comparison: cheaper than np.unique's hashing for these keys.
    key = key[np.concatenate([[True], key[1:] != key[:-1]])] if key.size else key
    return np.stack([key % n, key // n]).astype(np.int64)


def _execute(walks: _Walks, max_neighbors: int | None, rng: np.random.Generator) -> np.ndarray:
    # Walk u -> (pair p at server s) -> another pair at s: n_s - 1 choices per pair.
    pair_cum = _cumulative(walks.server_count[walks.pair_server] - 1)
    user_base = pair_cum[walks.user_ptr]
    users, local = _walk_indices(np.diff(user_base), max_neighbors, rng)
    pair, offset = _locate(pair_cum, user_base[users] + local)
    # Skip u's own slot in the server's list, so every walk ends at another user.
    slot = offset + (offset >= walks.pair_position[pair])
    others = walks.server_users[walks.server_ptr[walks.pair_server[pair]] + slot]
    return _finish(users, others, walks.num_users)


def _migrate(walks: _Walks, max_neighbors: int | None, rng: np.random.Generator) -> np.ndarray:
    # Walk u -> (pair p at server s) -> directed link s -> t -> any pair at t: n_t choices.
    adj_cum = _cumulative(walks.server_count[walks.adj_dst])
    server_base = adj_cum[walks.adj_ptr]  # (S + 1,): walks through server s's links
    pair_cum = _cumulative(np.diff(server_base)[walks.pair_server])
    user_base = pair_cum[walks.user_ptr]
    users, local = _walk_indices(np.diff(user_base), max_neighbors, rng)
    pair, offset = _locate(pair_cum, user_base[users] + local)
    link, slot = _locate(adj_cum, server_base[walks.pair_server[pair]] + offset)
    others = walks.server_users[walks.server_ptr[walks.adj_dst[link]] + slot]
    return _finish(users, others, walks.num_users)


def metapath_edges(
    instance: Instance,
    *,
    max_metapath_neighbors: int | None = DEFAULT_MAX_METAPATH_NEIGHBORS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``execute`` and ``migrate`` edge indices ``(2, E)`` (source row, target row).

    Args:
        instance: the instance.
        max_metapath_neighbors: at most this many incoming neighbours per user and metapath
            (sampled as described in the module docstring); ``None`` for the exact graphs, whose
            size is quadratic in server popularity.
        seed: seed of the neighbour sampling.
    """
    if max_metapath_neighbors is not None and max_metapath_neighbors < 0:
        raise InputError(
            f"max_metapath_neighbors: must be >= 0 or None, got {max_metapath_neighbors!r}"
        )
    # A cap of 0 draws no walk: the general path would sort every pair (_Walks) only to return
    # these same empty int64 arrays, which a model without metapaths asks for on every call.
    if max_metapath_neighbors == 0:
        return np.zeros((2, 0), dtype=np.int64), np.zeros((2, 0), dtype=np.int64)
    walks = _Walks(instance)
    execute_rng, migrate_rng = (np.random.default_rng([seed, k]) for k in range(2))
    return (
        _execute(walks, max_metapath_neighbors, execute_rng),
        _migrate(walks, max_metapath_neighbors, migrate_rng),
    )


def _index(*rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(rows).astype(np.int64, copy=False)).reshape(2, -1)


def build_graph(
    instance: Instance,
    *,
    max_metapath_neighbors: int | None = DEFAULT_MAX_METAPATH_NEIGHBORS,
    seed: int = 0,
) -> HeteroData:
    """The heterogeneous graph of ``instance`` (see the module docstring for its schema).

    Args:
        instance: the instance.
        max_metapath_neighbors: cap on the incoming ``execute`` / ``migrate`` neighbours of each
            user (``None`` = exact metapath graphs).
        seed: seed of the metapath neighbour sampling; the same arguments give the same graph.

    Returns:
        A :class:`~torch_geometric.data.HeteroData` with ``x`` and ``num_nodes`` on both node
        types, ``graph['user'].num_candidates`` (long, ``(U,)``), ``edge_index`` on every edge type
        of :data:`EDGE_TYPES` and ``edge_attr`` on the candidate and link edge types. Candidate edge
        ``i`` is instance pair ``i``.
    """
    num_users, num_servers = instance.num_users, instance.num_servers
    user_x, server_x, pair_x, link_x = graph_features(instance)
    graph = HeteroData()
    graph["user"].x = torch.from_numpy(user_x)
    graph["user"].num_nodes = num_users
    graph["user"].num_candidates = torch.from_numpy(np.diff(instance.user_pair_ptr))
    graph["server"].x = torch.from_numpy(server_x)
    graph["server"].num_nodes = num_servers

    users = np.arange(num_users, dtype=np.int64)
    graph[HOME].edge_index = _index(users, instance.user_server)
    graph[REV_HOME].edge_index = _index(instance.user_server, users)

    pairs = torch.from_numpy(pair_x)
    graph[CANDIDATE].edge_index = _index(instance.pair_user, instance.pair_server)
    graph[CANDIDATE].edge_attr = pairs
    graph[REV_CANDIDATE].edge_index = _index(instance.pair_server, instance.pair_user)
    graph[REV_CANDIDATE].edge_attr = pairs

    graph[LINK].edge_index = _index(
        np.concatenate([instance.link_a, instance.link_b]),
        np.concatenate([instance.link_b, instance.link_a]),
    )
    graph[LINK].edge_attr = torch.from_numpy(link_x)

    execute, migrate = metapath_edges(
        instance, max_metapath_neighbors=max_metapath_neighbors, seed=seed
    )
    graph[EXECUTE].edge_index = torch.from_numpy(execute)
    graph[MIGRATE].edge_index = torch.from_numpy(migrate)
    return graph


def collate_graphs(graphs: Sequence[HeteroData]) -> Batch:
    """Batch graphs end to end (:meth:`Batch.from_data_list`).

    Nodes, pairs and links of graph ``g`` follow those of graph ``g - 1`` with indices offset,
    exactly as :meth:`gnnalloc.families.edge.problem.ProblemTensors.collate` lays out the same instances, so
    candidate edge ``i`` of the batch is pair ``i`` of the collated problem.
    """
    if not graphs:
        raise InputError("graphs: need at least one graph to collate")
    return Batch.from_data_list(list(graphs))
