"""Metrics: a functional core of tensor functions and ``score`` for whole allocations."""

from gnnalloc.metrics._batch import batch_metrics, relative_violation
from gnnalloc.metrics._score import Score, score, user_utilities
from gnnalloc.metrics.functional import (
    jain_index,
    met_minimum_share,
    satisfaction,
    utility_gap,
    weighted_utility_variance,
)

__all__ = [
    "Score", "batch_metrics", "relative_violation", "score", "user_utilities", "jain_index", "met_minimum_share", "satisfaction",
    "utility_gap", "weighted_utility_variance",
]
