"""gnnalloc: learned, feasible, fair resource allocation on one engine for many problem families.

The public API mirrors the command line: ``load_instance``, ``solve``, ``score`` work for every
family (the instance's ``format`` chooses it); the edge family's types are re-exported here.
``gnnalloc.families`` is the package of the families (``gnnalloc.families.edge``, ``.power``,
``.sfl``); the registry of every family, :func:`gnnalloc.core.families`, is not re-exported
under that name, which the package holds.
"""

from gnnalloc.core import (
    AllocationError,
    InputError,
    InstanceError,
    SolveResult,
    SolverError,
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
    "SolverError", "eua_instance", "get_family", "load_allocation", "load_instance",
    "random_instance", "save_allocation", "save_instance", "score", "solve", "solve_exact",
]
