"""Neural network parts: the HAN encoder of instance graphs and the decision heads."""

from gnnalloc.nn.encoder import HANEncoder, HANLayer, RelationAttention, SemanticAttention
from gnnalloc.nn.heads import DecisionHeads

__all__ = ["DecisionHeads", "HANEncoder", "HANLayer", "RelationAttention", "SemanticAttention"]
