"""The edge family's metrics: ``score`` for whole allocations and per-graph batch metrics."""

from gnnalloc.families.edge.metrics._batch import batch_metrics, relative_violation
from gnnalloc.families.edge.metrics._score import Score, score, user_utilities

__all__ = ["Score", "batch_metrics", "relative_violation", "score", "user_utilities"]
