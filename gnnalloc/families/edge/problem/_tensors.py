"""Instances as tensors: the constraint structure shared by projections, losses and metrics.

``ProblemTensors`` holds one instance or a batch of instances laid end to end, exactly as PyG
batches graphs: users, servers, links and pairs of graph ``g`` follow those of graph ``g - 1`` and
every index is offset accordingly, so a batch is one big block-diagonal instance.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from gnnalloc.core import InputError
from gnnalloc.families.edge.problem._instance import Instance
from gnnalloc.families.edge.problem import _loads as loads
from gnnalloc.families.edge.problem._utility import user_compute, user_utility

__all__ = ["ProblemTensors"]


@dataclass
class ProblemTensors:
    """Constraint structure and demands of one or more instances.

    Args:
        pair_user: user of each pair, ``(P,)`` long, sorted within each graph.
        pair_server: candidate server of each pair, ``(P,)`` long.
        pair_link: link of each migrated pair, ``-1`` for home execution, ``(P,)`` long.
        pair_link_weight: link load per unit compute (``data_rate`` if migrated, else 0), ``(P,)``.
        user_server: home server per user, ``(U,)`` long.
        server_compute, server_bandwidth: capacities, ``(S,)``.
        link_capacity: ``(L,)``.
        compute_min, bandwidth_min, data_rate, weight: per user, ``(U,)``.
        penalty, alpha: per user (constant within a graph), ``(U,)``.
        user_graph: graph of each user, ``(U,)`` long.
        num_graphs: graphs in the batch.
    """

    pair_user: Tensor
    pair_server: Tensor
    pair_link: Tensor
    pair_link_weight: Tensor
    user_server: Tensor
    server_compute: Tensor
    server_bandwidth: Tensor
    link_capacity: Tensor
    compute_min: Tensor
    bandwidth_min: Tensor
    data_rate: Tensor
    weight: Tensor
    penalty: Tensor
    alpha: Tensor
    user_graph: Tensor
    num_graphs: int = 1

    @property
    def num_users(self) -> int:
        return int(self.user_server.shape[0])

    @property
    def num_servers(self) -> int:
        return int(self.server_compute.shape[0])

    @property
    def num_links(self) -> int:
        return int(self.link_capacity.shape[0])

    @property
    def num_pairs(self) -> int:
        return int(self.pair_user.shape[0])

    @cached_property
    def home_pairs(self) -> Tensor:
        """Indices of the pairs executed at the user's home server (``pair_link < 0``); computed
        once (a host synchronisation), as every refill and the search's candidates read it."""
        return torch.nonzero(self.pair_link < 0, as_tuple=True)[0]

    @property
    def device(self) -> torch.device:
        return self.compute_min.device

    @property
    def dtype(self) -> torch.dtype:
        return self.compute_min.dtype

    @classmethod
    def from_instance(
        cls,
        instance: Instance,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> "ProblemTensors":
        """Tensors of one instance."""

        def real(a: np.ndarray) -> Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float64), device=device).to(dtype)

        def index(a: np.ndarray) -> Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)

        num_users = instance.num_users
        return cls(
            pair_user=index(instance.pair_user),
            pair_server=index(instance.pair_server),
            pair_link=index(instance.pair_link),
            pair_link_weight=real(instance.pair_link_weight),
            user_server=index(instance.user_server),
            server_compute=real(instance.server_compute),
            server_bandwidth=real(instance.server_bandwidth),
            link_capacity=real(instance.link_capacity),
            compute_min=real(instance.compute_min),
            bandwidth_min=real(instance.bandwidth_min),
            data_rate=real(instance.data_rate),
            weight=real(instance.weight),
            penalty=real(np.full(num_users, instance.penalty)),
            alpha=real(np.full(num_users, instance.alpha)),
            user_graph=index(np.zeros(num_users, dtype=np.int64)),
            num_graphs=1,
        )

    @classmethod
    def collate(cls, items: Sequence["ProblemTensors"]) -> "ProblemTensors":
        """Lay several problems end to end, offsetting every index (like PyG's ``Batch``)."""
        if not items:
            raise InputError("items: need at least one problem to collate")
        user_off = server_off = link_off = graph_off = 0
        parts: dict[str, list[Tensor]] = {f.name: [] for f in fields(cls) if f.name != "num_graphs"}
        for item in items:
            for f in parts:
                value = getattr(item, f)
                if f == "pair_user":
                    value = value + user_off
                elif f in ("pair_server", "user_server"):
                    value = value + server_off
                elif f == "pair_link":
                    value = torch.where(value >= 0, value + link_off, value)
                elif f == "user_graph":
                    value = value + graph_off
                parts[f].append(value)
            user_off += item.num_users
            server_off += item.num_servers
            link_off += item.num_links
            graph_off += item.num_graphs
        return cls(**{f: torch.cat(v) for f, v in parts.items()}, num_graphs=graph_off)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "ProblemTensors":
        """Move to ``device`` and cast real-valued tensors to ``dtype``."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = value.to(device=device)
                if dtype is not None and value.is_floating_point():
                    value = value.to(dtype)
            out[f.name] = value
        return type(self)(**out)

    # ------------------------------------------------------------- loads
    def server_compute_load(self, compute: Tensor) -> Tensor:
        """``sum_u x[u,s]`` per server from per-pair compute ``(..., P)`` -> ``(..., S)``."""
        return loads.server_compute_load(compute, self.pair_server, self.num_servers)

    def server_bandwidth_load(self, bandwidth: Tensor) -> Tensor:
        """Sum of ``y[u]`` per home server, ``(..., U)`` -> ``(..., S)``."""
        return loads.server_bandwidth_load(bandwidth, self.user_server, self.num_servers)

    def link_load(self, compute: Tensor) -> Tensor:
        """``sum data_rate[u] x[u,s]`` over migrated pairs per link, ``(..., P)`` -> ``(..., L)``."""
        return loads.link_load(compute, self.pair_link, self.pair_link_weight, self.num_links)

    def user_compute(self, compute: Tensor) -> Tensor:
        """``X[u] = sum_s x[u,s]``, ``(..., P)`` -> ``(..., U)``."""
        return user_compute(compute, self.pair_user, self.num_users)

    def user_utility(self, compute: Tensor, bandwidth: Tensor) -> Tensor:
        """Per-user utility ``U_u`` of per-pair compute and per-user bandwidth."""
        return user_utility(
            self.user_compute(compute), bandwidth, self.compute_min, self.bandwidth_min,
            self.weight, self.penalty, self.alpha,
        )
