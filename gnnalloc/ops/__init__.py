"""Tensor kernels shared by every family: softmax, sums and ranks over segments (a node's incoming
edges, a server's pairs, an instance's links), and the weighted sums of message passing."""

from gnnalloc.ops._gather import gather_weighted_sum
from gnnalloc.ops._rank import segment_rank
from gnnalloc.ops._segment import segment_sum
from gnnalloc.ops._softmax import segment_softmax

__all__ = ["gather_weighted_sum", "segment_rank", "segment_softmax", "segment_sum"]
