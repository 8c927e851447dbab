"""Tensor kernels shared by every family: softmax over segments (a node's incoming edges)."""

from gnnalloc.ops._softmax import segment_softmax

__all__ = ["segment_softmax"]
