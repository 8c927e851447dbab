r"""The graph of a power-control instance, as the learned allocator sees it.

One node type, ``link`` (a transmitter-receiver pair), and two relations over the interference
edges: ``interferes`` (transmitter :math:`j` to the receiver of :math:`k`, so :math:`k` learns
who disturbs it) and ``rev_interferes`` (the same edges reversed, so :math:`j` learns whom it
disturbs). Edges whose interference at full power is below ``prune`` times the receiver's noise
plus total interference are left out of the two relations (a receiver's few dominant interferers
carry what matters, and the degree then stays nearly constant as layouts grow),
but every edge stays in the ``gain`` relation, which the allocator's WMMSE refinement and the
utility use: pruning never changes the problem that is solved.

Features are functions of noise-normalised quantities only (see :mod:`._links`), so scaling every
gain, or the noise, by a constant, or every power limit and gain inversely, leaves them unchanged.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, HeteroData

from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.nn import GraphSchema
from gnnalloc.families.power._links import LinkBatch, normalised_links

__all__ = [
    "EDGE_FEATURES", "EDGE_TYPES", "GAIN_EDGE", "LINK_FEATURES", "SCHEMA", "build_link_graph",
    "collate_link_graphs", "instance_graph", "link_batch",
]

LINK_FEATURES = (
    "log_snr", "log_interference_in", "log_interference_out", "log_harm_out", "weight",
    "alpha_fair", "log_alpha", "log_penalty", "rate_min_share", "log_degree",
)
EDGE_FEATURES = ("log_inr", "log_inr_over_own_snr", "log_inr_over_source_snr")
EDGE_TYPES = (("link", "interferes", "link"), ("link", "rev_interferes", "link"))
GAIN_EDGE = ("link", "gain", "link")
#: What the generic encoder is built from (the ``gain`` relation is the problem, not a message).
SCHEMA = GraphSchema({"link": len(LINK_FEATURES)}, {e: len(EDGE_FEATURES) for e in EDGE_TYPES})

_LOG10 = math.log(10.0)


def _log10(x: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(x, 1e-30))


def build_link_graph(
    snr: np.ndarray,
    rx: np.ndarray,
    tx: np.ndarray,
    inr: np.ndarray,
    weight: np.ndarray,
    rate_min: np.ndarray,
    alpha: float,
    penalty: float,
    alpha_fair: bool,
    prune: float = 1e-2,
    edges_sorted: bool = False,
) -> HeteroData:
    """A :class:`HeteroData` of one instance given in noise-normalised form (:class:`LinkBatch`).

    Args:
        snr: ``(K,)`` direct SNR at full power.
        rx, tx, inr: ``(E,)`` interference edges and their INR at full power.
        weight: ``(K,)`` utility weights.
        rate_min: ``(K,)`` minimum rates (ignored unless ``alpha_fair``).
        alpha, penalty: the α-fair parameters.
        alpha_fair: the utility (``False``: weighted sum rate).
        prune: edges with ``inr < prune * (1 + total inr at the receiver)`` are left out of the
            message-passing relations.
        edges_sorted: the caller guarantees the edges are sorted by ``(rx, tx)`` without
            repeats (as :func:`normalised_links` returns them); otherwise they are sorted here.
    """
    k = snr.shape[0]
    rx, tx = rx.astype(np.int64, copy=False), tx.astype(np.int64, copy=False)
    if not edges_sorted:  # by receiver, then transmitter: CSR rows
        key = rx * k + tx
        if not (np.diff(key) > 0).all():
            order = np.argsort(key, kind="stable")
            rx, tx, inr = rx[order], tx[order], inr[order]
    incoming = np.bincount(rx, weights=inr, minlength=k)
    outgoing = np.bincount(tx, weights=inr, minlength=k)
    harm = np.bincount(tx, weights=inr / np.maximum(snr[rx], 1e-30), minlength=k)
    # The few kept edges by position: indexing with them is much cheaper than with the mask.
    keep = np.flatnonzero(inr >= prune * (1.0 + incoming[rx]))
    e_rx, e_tx, e_inr = rx[keep], tx[keep], inr[keep]
    degree = np.bincount(e_rx, minlength=k) + np.bincount(e_tx, minlength=k)
    mean_weight = float(weight.mean()) if k else 1.0
    capacity = np.log2(1.0 + snr)
    share = rate_min / np.maximum(capacity, 1e-30) if alpha_fair else np.zeros(k)
    log_snr = _log10(snr)
    x = np.stack(
        [
            log_snr / 4.0,
            np.log1p(incoming) / 4.0,
            np.log1p(outgoing) / 4.0,
            np.log1p(harm),
            weight / mean_weight,
            np.full(k, float(alpha_fair)),
            np.full(k, math.log(alpha) if alpha_fair else 0.0),
            np.full(k, math.log(penalty) / 4.0 if alpha_fair else 0.0),
            np.minimum(share, 10.0),
            np.log1p(degree) / 4.0,
        ],
        axis=1,
    )
    log_inr = _log10(e_inr)
    edge_attr = np.stack(
        [log_inr / 4.0, (log_inr - log_snr[e_rx]) / 4.0, (log_inr - log_snr[e_tx]) / 4.0],
        axis=1,
    ) if e_inr.size else np.zeros((0, len(EDGE_FEATURES)))
    graph = HeteroData()
    store = graph["link"]
    store.x = torch.from_numpy(x).float()
    store.snr = torch.from_numpy(snr.astype(np.float64))
    store.weight = torch.from_numpy(weight.astype(np.float64))
    store.rate_min = torch.from_numpy(
        (rate_min if alpha_fair else np.ones(k)).astype(np.float64)
    )
    store.alpha = torch.full((k,), float(alpha), dtype=torch.float64)
    store.penalty = torch.full((k,), float(penalty), dtype=torch.float64)
    store.fair = torch.full((k,), bool(alpha_fair))
    attr = torch.from_numpy(edge_attr).float()
    graph[EDGE_TYPES[0]].edge_index = torch.from_numpy(np.stack([e_tx, e_rx]))
    graph[EDGE_TYPES[0]].edge_attr = attr

    graph[EDGE_TYPES[1]].edge_index = torch.from_numpy(np.stack([e_rx, e_tx]))
    graph[EDGE_TYPES[1]].edge_attr = attr
    graph[GAIN_EDGE].edge_index = torch.from_numpy(np.stack([tx, rx]))
    graph[GAIN_EDGE].inr = torch.from_numpy(inr.astype(np.float64, copy=False))
    return graph


def collate_link_graphs(graphs: Sequence[HeteroData]) -> Batch:
    """One PyG batch of graphs from :func:`build_link_graph` (edge indices shifted)."""
    return Batch.from_data_list(list(graphs))


def link_batch(graph: HeteroData) -> LinkBatch:
    """The :class:`LinkBatch` of a graph or batch of graphs: the problem it encodes."""
    store = graph["link"]
    n = store.x.shape[0]
    device = store.x.device
    batch = store.batch if "batch" in store else torch.zeros(n, dtype=torch.long, device=device)
    edges = graph[GAIN_EDGE]
    return LinkBatch(
        snr=store.snr, rx=edges.edge_index[1], tx=edges.edge_index[0], inr=edges.inr,
        weight=store.weight, rate_min=store.rate_min, alpha=store.alpha, penalty=store.penalty,
        fair=store.fair, batch=batch, num_graphs=int(getattr(graph, "num_graphs", 1)),
    )


def instance_graph(instance: PowerInstance, prune: float = 1e-2) -> HeteroData:
    """:func:`build_link_graph` of a :class:`PowerInstance` (normalised by its noise and
    power limits)."""
    snr, rx, tx, inr, rate_min = normalised_links(instance)
    return build_link_graph(
        snr, rx, tx, inr, instance.weight, rate_min, instance.alpha, instance.penalty,
        instance.utility == "alpha_fair", prune, edges_sorted=True,
    )
