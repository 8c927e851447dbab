"""The split-federated-learning family (``gnnalloc.sfl/v1``)."""

from gnnalloc.families.sfl._allocation import ALLOCATION_FORMAT, SflAllocation
from gnnalloc.families.sfl._architectures import ARCHITECTURES, Block, layer_table, resnet18_blocks, vit_blocks
from gnnalloc.families.sfl._exact import ExactSolution, client_shares, solve_exact
from gnnalloc.families.sfl._generators import random_sfl
from gnnalloc.families.sfl._instance import INSTANCE_FORMAT, SflInstance
from gnnalloc.families.sfl._model import RoundCosts, max_violation, round_costs, uplink_rate, violations

__all__ = [
    "ALLOCATION_FORMAT", "ARCHITECTURES", "Block", "ExactSolution", "INSTANCE_FORMAT", "RoundCosts",
    "SflAllocation", "SflInstance", "client_shares", "layer_table", "max_violation", "random_sfl",
    "resnet18_blocks", "round_costs", "solve_exact", "uplink_rate", "violations", "vit_blocks",
]
