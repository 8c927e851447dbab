"""Solvers: the exact conic program, smoothed dual ascent, closed-form water-filling, the
migration search, simple baselines, and the Lagrangian bound that certifies any of them."""

from gnnalloc.families.edge.solvers._baselines import equal_share, proportional_share
from gnnalloc.families.edge.solvers._bound import best_value, lagrangian_bound
from gnnalloc.families.edge.solvers._dual import (
    DEFAULT_TEMPERATURE, MIN_TEMPERATURE, DualResult, check_temperature, default_iterations, load_dual_kernels,
    smoothed_dual, solve_dual,
)
from gnnalloc.families.edge.solvers._exact import CERTIFIED_GAP, ExactResult, repair, solve_exact
from gnnalloc.families.edge.solvers._migration_search import improve_migrations
from gnnalloc.families.edge.solvers._waterfilling import waterfill

__all__ = [
    "CERTIFIED_GAP", "DEFAULT_TEMPERATURE", "DualResult", "ExactResult", "MIN_TEMPERATURE", "best_value",
    "check_temperature",
    "default_iterations", "equal_share", "improve_migrations", "lagrangian_bound", "load_dual_kernels",
    "proportional_share", "repair", "smoothed_dual", "solve_dual", "solve_exact", "waterfill",
]
