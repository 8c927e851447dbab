"""gnnalloc: learned, feasible, fair resource allocation on one engine for many problem families.

The public API mirrors the command line: ``load_instance``, ``solve``, ``score`` work for every
family (the instance's ``format`` chooses it); the edge family's types are re-exported here.
"""

from gnnalloc.core import (
    AllocationError,
    InputError,
    InstanceError,
    SolveResult,
    SolverError,
    families,
    get_family,
    load_instance,
    score,
    solve,
)
from gnnalloc.families.edge import (
    Allocation,
    Allocator,
    Instance,
    Score,
    eua_instance,
    load_allocation,
    random_instance,
    save_allocation,
    save_instance,
    solve_exact,
)

__version__ = "0.1.0"

__all__ = [
    "Allocation", "Allocator", "AllocationError", "InputError", "Instance", "InstanceError", "Score", "SolveResult",
    "SolverError", "eua_instance", "families", "get_family", "load_allocation", "load_instance",
    "random_instance", "save_allocation", "save_instance", "score", "solve", "solve_exact",
]
