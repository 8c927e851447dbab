r"""Sums over segments: :math:`\text{out}_{\dots, j} = \sum_{i : \text{index}_i = j} v_{\dots, i}`
(a server's load from its pairs, a user's total from its pairs, a link's interference)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["segment_mean", "segment_sum"]


def segment_sum(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Sum the last dimension of ``values`` ``(..., N)`` into ``num_segments`` bins by ``index``
    ``(N,)``, giving ``(..., num_segments)`` (empty segments are 0; batched over leading
    dimensions, differentiable)."""
    out = values.new_zeros(values.shape[:-1] + (num_segments,))
    return out.index_add(-1, index, values)


def segment_mean(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """The mean of the last dimension of ``values`` ``(..., N)`` over each of ``num_segments``
    bins by ``index`` ``(N,)``, giving ``(..., num_segments)`` (empty segments are 0;
    differentiable)."""
    count = torch.bincount(index, minlength=num_segments).to(values.dtype).clamp(min=1.0)
    return segment_sum(values, index, num_segments) / count
