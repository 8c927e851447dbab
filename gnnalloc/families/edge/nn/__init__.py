"""The edge family's learned models: the price model of ``gnn`` and the share-head allocator."""

from gnnalloc.families.edge.nn.allocator import Allocator, Decisions
from gnnalloc.families.edge.nn.heads import DecisionHeads
from gnnalloc.families.edge.nn.prices import PREDICTION_USERS_PER_SERVER, PricePredictor, price_references

__all__ = [
    "Allocator", "DecisionHeads", "Decisions", "PREDICTION_USERS_PER_SERVER", "PricePredictor", "price_references",
]
