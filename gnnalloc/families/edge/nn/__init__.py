"""The edge family's learned allocator: decision heads and the model around the HAN encoder."""

from gnnalloc.families.edge.nn.allocator import Allocator, Decisions
from gnnalloc.families.edge.nn.heads import DecisionHeads

__all__ = ["Allocator", "DecisionHeads", "Decisions"]
