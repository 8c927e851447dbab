"""The wireless power-control family (``gnnalloc.power/v1``).

K transmitter-receiver links share a band; link k transmits with power ``p_k`` in
``[0, pmax_k]`` and gets ``r_k = log2(1 + g_kk p_k / (noise + sum_{j != k} g_kj p_j))`` bits/s/Hz.
The objective is the weighted sum rate or the library's alpha-fair utility of the rates. The rate
model as tensor functions is :mod:`gnnalloc.families.power.functional`; ``FAMILY`` is what the
engine (:func:`gnnalloc.core.solve`, the CLI, the server) uses.
"""

from gnnalloc.families.power import functional
from gnnalloc.families.power._allocation import (
    ALLOCATION_FORMAT, FRAME_FORMAT, MAX_SLOTS, PowerAllocation, PowerFrame, frame_time_shares, load_power_allocation,
    parse_power_allocation, save_power_allocation,
)
from gnnalloc.families.power._baselines import full_power, greedy, greedy_schedule
from gnnalloc.families.power._family import METHODS, VALUE_RANGES, PowerFamily
from gnnalloc.families.power._frame import (
    DEFAULT_FAIR_TIME, DEFAULT_SLOTS, fair_time_rates, frame_rates, least_fair_time, proportional_fair_frame,
    solve_frame,
)
from gnnalloc.families.power._generators import MAX_LINKS, d2d, gaussian, itu1411_gain_db
from gnnalloc.families.power._instance import (
    INSTANCE_FORMAT, PowerInstance, load_power_instance, save_power_instance,
)
from gnnalloc.families.power._iterative import (
    WMMSE_MAX_ITER, WMMSE_MAX_STARTS, WMMSE_STARTS, WMMSE_TOL, IterationTrace, fp, fractional_programming,
    starting_points, wmmse, wmmse_powers,
)
from gnnalloc.families.power._normalised import NormalisedProblem
from gnnalloc.families.power._optimum import MAX_OPTIMUM_LINKS, box_upper_bound, branch_and_bound, optimum
from gnnalloc.families.power._score import (
    OFF_FRACTION, PowerScore, allocation_rates, allocation_utilities, max_violation, score, slot_rates,
)

#: The family object the registry discovers.
FAMILY = PowerFamily()

__all__ = [
    "ALLOCATION_FORMAT", "DEFAULT_FAIR_TIME", "DEFAULT_SLOTS", "FAMILY", "FRAME_FORMAT", "INSTANCE_FORMAT", "IterationTrace",
    "MAX_LINKS", "MAX_OPTIMUM_LINKS", "MAX_SLOTS",
    "METHODS", "NormalisedProblem", "OFF_FRACTION", "PowerAllocation", "PowerFamily", "PowerFrame",
    "PowerInstance", "PowerScore", "VALUE_RANGES", "WMMSE_MAX_ITER", "WMMSE_MAX_STARTS", "WMMSE_STARTS", "WMMSE_TOL",
    "allocation_rates", "allocation_utilities", "box_upper_bound", "branch_and_bound", "d2d", "fair_time_rates", "fp",
    "fractional_programming", "frame_rates", "frame_time_shares", "full_power", "functional", "gaussian",
    "greedy", "greedy_schedule", "itu1411_gain_db", "least_fair_time", "load_power_allocation", "load_power_instance",
    "max_violation", "optimum", "parse_power_allocation", "proportional_fair_frame", "save_power_allocation",
    "save_power_instance", "score", "slot_rates", "solve_frame", "starting_points", "wmmse", "wmmse_powers",
]
