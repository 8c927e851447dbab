"""gnnalloc: learned, feasible, fair resource allocation for edge networks.

The public API mirrors the command line: ``load_instance``, ``solve``, ``score``.
"""

from gnnalloc.generators import eua_instance, random_instance
from gnnalloc.metrics import Score, score
from gnnalloc.nn.allocator import Allocator
from gnnalloc.problem import (
    Allocation,
    AllocationError,
    Instance,
    InstanceError,
    SolverError,
    load_allocation,
    load_instance,
    save_allocation,
    save_instance,
)
from gnnalloc.solvers import SolveResult, solve, solve_exact

__version__ = "0.1.0"

__all__ = [
    "Allocation", "Allocator", "AllocationError", "Instance", "InstanceError", "Score", "SolveResult",
    "SolverError", "eua_instance", "load_allocation", "load_instance", "random_instance",
    "save_allocation", "save_instance", "score", "solve", "solve_exact",
]
