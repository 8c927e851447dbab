"""The allocation problem: instances, allocations, utilities, feasibility."""

from gnnalloc.families.edge.problem._allocation import (
    ALLOCATION_FORMAT,
    Allocation,
    load_allocation,
    save_allocation,
)
from gnnalloc.core import AllocationError, InstanceError, SolverError
from gnnalloc.families.edge.problem._feasibility import (
    constraint_slack, fit_compute_to_capacity, fit_to_capacity, max_violation, relative_violation,
    shrink_factor,
)
from gnnalloc.families.edge.problem._instance import INSTANCE_FORMAT, Instance, load_instance, save_instance
from gnnalloc.families.edge.problem._sampling import sample_user_indices, sample_users
from gnnalloc.families.edge.problem._tensors import ProblemTensors
from gnnalloc.core import resource_utility
from gnnalloc.families.edge.problem._utility import user_compute, user_utility

__all__ = [
    "ALLOCATION_FORMAT", "Allocation", "AllocationError", "INSTANCE_FORMAT", "Instance",
    "InstanceError", "ProblemTensors", "SolverError", "constraint_slack",
    "fit_compute_to_capacity", "fit_to_capacity", "load_allocation", "load_instance",
    "max_violation", "resource_utility", "relative_violation", "sample_user_indices", "sample_users",
    "save_allocation", "save_instance", "shrink_factor", "user_compute", "user_utility",
]
