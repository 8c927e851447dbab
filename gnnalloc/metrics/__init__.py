"""Metrics every family shares, as pure tensor functions (the families' scores build on them)."""

from gnnalloc.metrics.functional import (
    jain_index,
    met_minimum_share,
    satisfaction,
    utility_gap,
    weighted_utility_variance,
)

__all__ = [
    "jain_index", "met_minimum_share", "satisfaction", "utility_gap", "weighted_utility_variance",
]
