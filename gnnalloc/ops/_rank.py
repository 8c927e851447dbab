r"""Ranks within segments: the position of each entry among its segment's entries once these
are ordered by a key (the lowest utilities of a group, the costliest links of an instance)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["segment_rank"]


def segment_rank(index: Tensor, num_segments: int, key: Tensor | None = None, descending: bool = False) -> Tensor:
    """Rank ``(N,)`` (long, from 0) of each entry within its segment ``index`` ``(N,)``, ordered
    by ``key`` ``(N,)`` (ascending, or ``descending``); ties, and every entry when ``key`` is
    ``None``, keep their order of position. Not differentiable (ranks are integers)."""
    if key is None:
        order = torch.argsort(index, stable=True)
    else:
        order = torch.argsort(key.detach(), descending=descending, stable=True)
        order = order[torch.argsort(index[order], stable=True)]
    count = torch.bincount(index, minlength=num_segments)
    first = torch.cumsum(count, 0) - count
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device) - first[index[order]]
    return rank
