"""Baselines: every link at full power, and greedy on/off scheduling."""

from __future__ import annotations

import math
import time

import torch

from gnnalloc.core import SolveResult
from gnnalloc.families.power._allocation import PowerAllocation
from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.families.power._normalised import NormalisedProblem

__all__ = ["full_power", "greedy", "greedy_schedule"]


def full_power(instance: PowerInstance) -> SolveResult:
    """The ``full_power`` method: :math:`p_k = p^{max}_k` for every link."""
    start = time.perf_counter()
    power = instance.pmax.copy()
    return SolveResult(PowerAllocation(power=power), "full_power", time.perf_counter() - start)


def greedy_schedule(problem: NormalisedProblem) -> torch.Tensor:
    r"""Greedy on/off scheduling: start with every link off; repeatedly switch on, at full power,
    the link whose switching on most increases the objective; stop when none does.

    Each round scores every candidate at once: switching on link :math:`j` adds
    :math:`\tilde g_{kj}` to the interference of every active link :math:`k` and gives
    :math:`j` its own SINR against the active set, so a round costs
    :math:`O(K \cdot |\text{active}|)`.

    Returns:
        The 0/1 normalised powers ``(K,)``.
    """
    k = problem.num_links
    gains, direct, cross = problem.gains, problem.direct, problem.cross
    on = torch.zeros(k, dtype=torch.bool, device=gains.device)
    interference = torch.zeros(k, dtype=gains.dtype, device=gains.device)  # from active links
    off_utility = problem.link_utility(torch.zeros(1, k, dtype=gains.dtype, device=gains.device))[0]
    utility = off_utility.clone()  # current per-link utilities
    ln2 = math.log(2.0)
    for _ in range(k):
        candidates = torch.nonzero(~on).squeeze(-1)
        active = torch.nonzero(on).squeeze(-1)
        # Switching candidate j on: its own utility leaves the off value, and every active
        # link's utility changes under the added interference (inactive ones stay off).
        own_rate = torch.log1p(direct[candidates] / (1.0 + interference[candidates])) / ln2
        own = problem.link_utility(own_rate.unsqueeze(0), candidates)[0]
        gain = own - off_utility[candidates]
        if active.numel():
            boosted = interference[active].unsqueeze(0) + cross[active][:, candidates].T
            rates = torch.log1p(direct[active] / (1.0 + boosted)) / ln2  # (candidates, active)
            new_active = problem.link_utility(rates, active)
            gain = gain + (new_active - utility[active]).sum(-1)
        best = int(torch.argmax(gain))
        if not bool(gain[best] > 0):
            break
        j = int(candidates[best])
        on[j] = True
        interference = interference + cross[:, j]
        if active.numel():
            utility[active] = new_active[best]
        utility[j] = own[best]
    return on.to(gains.dtype)


def greedy(instance: PowerInstance) -> SolveResult:
    """The ``greedy`` method: :func:`greedy_schedule`, each link at 0 or ``pmax``."""
    start = time.perf_counter()
    problem = NormalisedProblem.of(instance)
    power = greedy_schedule(problem).cpu().numpy() * instance.pmax
    return SolveResult(PowerAllocation(power=power), "greedy", time.perf_counter() - start)
