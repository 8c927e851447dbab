"""The split-federated-learning family (``gnnalloc.sfl/v1``)."""

from gnnalloc.families.sfl._allocation import ALLOCATION_FORMAT, SflAllocation
from gnnalloc.families.sfl._instance import INSTANCE_FORMAT, SflInstance
from gnnalloc.families.sfl._model import RoundCosts, max_violation, round_costs, uplink_rate, violations

__all__ = [
    "ALLOCATION_FORMAT", "INSTANCE_FORMAT", "RoundCosts", "SflAllocation", "SflInstance",
    "max_violation", "round_costs", "uplink_rate", "violations",
]
