"""The edge family (``gnnalloc.instance/v1``): compute and access bandwidth for users of edge
servers, with work migrated over inter-server links; exact, dual and baseline solvers, the
learned allocator and its shipped checkpoint.

The engine reaches it through :data:`FAMILY`; users may also import its parts directly.
"""

from gnnalloc.families.edge.problem import (
    ALLOCATION_FORMAT, INSTANCE_FORMAT, Allocation, Instance, ProblemTensors, load_allocation,
    load_instance, max_violation, save_allocation, save_instance, user_utility,
)
from gnnalloc.families.edge.generators import eua_instance, random_instance
from gnnalloc.families.edge.solvers import (
    CERTIFIED_GAP, equal_share, lagrangian_bound, proportional_share, solve_dual, solve_exact,
)
from gnnalloc.families.edge.metrics import Score, score, user_utilities
from gnnalloc.families.edge.nn import Allocator, PricePredictor
from gnnalloc.families.edge._family import FAMILY, VALUE_RANGES, EdgeFamily
from gnnalloc.families.edge._methods import (
    GNN_FIRST_CHUNK, gnn_gap_tol, gnn_refine, gnn_refinement_options, gnn_temperature, shipped_allocator,
)

__all__ = [
    "ALLOCATION_FORMAT", "Allocation", "GNN_FIRST_CHUNK", "Allocator", "CERTIFIED_GAP", "EdgeFamily", "FAMILY", "PricePredictor",
    "INSTANCE_FORMAT", "Instance", "ProblemTensors", "Score", "VALUE_RANGES", "equal_share",
    "eua_instance", "gnn_gap_tol", "gnn_refine", "gnn_refinement_options", "gnn_temperature", "lagrangian_bound", "load_allocation", "load_instance", "max_violation",
    "proportional_share", "random_instance", "save_allocation", "save_instance", "score", "shipped_allocator",
    "solve_dual", "solve_exact", "user_utilities", "user_utility",
]
