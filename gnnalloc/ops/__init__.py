"""Tensor kernels shared by every family: softmax, sums and ranks over segments (a node's incoming
edges, a server's pairs, an instance's links), the weighted sums of message passing, and the
compiled inference pass of one relation's node-level attention."""

from gnnalloc.ops._attention import RELATION_ATTENTION_DTYPES, load_relation_attention, relation_attention
from gnnalloc.ops._gather import gather_weighted_sum
from gnnalloc.ops._rank import segment_rank
from gnnalloc.ops._segment import segment_mean, segment_sum
from gnnalloc.ops._softmax import segment_softmax

__all__ = [
    "RELATION_ATTENTION_DTYPES", "gather_weighted_sum", "load_relation_attention", "relation_attention", "segment_rank", "segment_softmax",
    "segment_mean", "segment_sum",
]
