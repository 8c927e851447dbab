"""Differentiable Euclidean projections onto the feasible set of an allocation problem.

``FastProjection`` (pure torch, exact to a tolerance, batched) is the one to train with;
``CvxpyProjection`` (cvxpylayers + Clarabel) is the reference it is tested against.
"""

from gnnalloc.projection._base import Projection, check_inputs
from gnnalloc.projection._cvxpy import CvxpyProjection
from gnnalloc.projection._fast import FastProjection, ProjectionStats
from gnnalloc.projection.functional import (
    SegmentLayout,
    capped_simplex_projection,
    conjugate_gradient,
    group_sum,
    group_threshold,
    segment_layout,
    support_threshold,
    weighted_capped_projection,
)

__all__ = [
    "CvxpyProjection", "FastProjection", "Projection", "ProjectionStats", "SegmentLayout",
    "capped_simplex_projection", "check_inputs", "conjugate_gradient", "group_sum",
    "group_threshold", "segment_layout", "support_threshold", "weighted_capped_projection",
]
