"""Tensor kernels shared by every family: softmax and sums over segments (a node's incoming
edges, a server's pairs)."""

from gnnalloc.ops._segment import segment_sum
from gnnalloc.ops._softmax import segment_softmax

__all__ = ["segment_softmax", "segment_sum"]
