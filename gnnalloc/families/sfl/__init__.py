"""The split-federated-learning family (``gnnalloc.sfl/v1``): per client a split layer, a share
of the uplink band, a CPU frequency and a transmit power, for the shortest training round under
energy budgets. ``FAMILY`` is what the engine registers."""

from gnnalloc.families.sfl._allocation import ALLOCATION_FORMAT, SflAllocation
from gnnalloc.families.sfl._architectures import ARCHITECTURES, Block, layer_table, resnet18_blocks, vit_blocks
from gnnalloc.families.sfl._baselines import equal_allocation, proportional_allocation
from gnnalloc.families.sfl._exact import ExactSolution, client_shares, solve_exact
from gnnalloc.families.sfl._family import FAMILY, VALUE_RANGES, SflFamily
from gnnalloc.families.sfl._generators import random_sfl
from gnnalloc.families.sfl._instance import INSTANCE_FORMAT, SflInstance
from gnnalloc.families.sfl._model import RoundCosts, max_violation, round_costs, uplink_rate, violations
from gnnalloc.families.sfl._score import SflScore, score
from gnnalloc.families.sfl._weighted import WeightedSolution, solve_weighted

__all__ = [
    "ALLOCATION_FORMAT", "ARCHITECTURES", "Block", "ExactSolution", "FAMILY", "INSTANCE_FORMAT",
    "RoundCosts", "SflAllocation", "SflFamily", "SflInstance", "SflScore", "VALUE_RANGES",
    "client_shares", "equal_allocation", "layer_table", "max_violation", "proportional_allocation",
    "random_sfl", "resnet18_blocks", "round_costs", "score", "solve_exact", "uplink_rate",
    "solve_weighted", "violations", "vit_blocks", "WeightedSolution",
]
