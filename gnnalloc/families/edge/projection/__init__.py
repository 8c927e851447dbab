"""Differentiable Euclidean projections onto the feasible set of an allocation problem.

``FastProjection`` (pure torch, exact to a tolerance, batched) is the one to train with;
``CvxpyProjection`` (cvxpylayers + Clarabel) is the reference it is tested against.
"""

from gnnalloc.families.edge.projection._base import Projection, check_inputs
from gnnalloc.families.edge.projection._cvxpy import CvxpyProjection
from gnnalloc.families.edge.projection._fast import FastProjection, ProjectionStats
from gnnalloc.families.edge.projection._jacobian import ProjectionJacobian
from gnnalloc.families.edge.projection.functional import (
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
    "CvxpyProjection", "FastProjection", "Projection", "ProjectionJacobian", "ProjectionStats", "SegmentLayout",
    "capped_simplex_projection", "check_inputs", "conjugate_gradient", "group_sum",
    "group_threshold", "segment_layout", "support_threshold", "weighted_capped_projection",
]
