r"""An instance in noise- and power-normalised units, the form every solver iterates on.

With :math:`x_k = p_k / p^{max}_k \in [0, 1]` and :math:`\tilde g_{kj} = g_{kj} p^{max}_j / \sigma^2`,

.. math::  \mathrm{SINR}_k = \frac{\tilde g_{kk} x_k}{1 + \sum_{j \ne k} \tilde g_{kj} x_j},

so the problem no longer depends on the units of gains, powers and noise (real path losses of
1e-15 become SNRs of order 1..1e8) and the power box is the unit cube.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.families.power._links import LinkBatch, graph_utility, link_rates, utility_slope
from gnnalloc.families.power.functional import link_utility

__all__ = ["NormalisedProblem"]


@dataclass(frozen=True)
class NormalisedProblem:
    """Tensors of one instance in normalised units (see the module docstring).

    Args:
        gains: :math:`\\tilde g`, ``(K, K)``, row = receiver, column = transmitter.
        weight, rate_min: per-link weights and minimum rates (``rate_min`` 1 when absent: it is
            then unused, the utility being ``sum_rate``).
        utility, alpha, penalty: the instance's utility.
    """

    gains: Tensor
    weight: Tensor
    rate_min: Tensor
    utility: str
    alpha: float
    penalty: float

    @classmethod
    def of(cls, instance: PowerInstance, dtype: torch.dtype = torch.float64,
           device: torch.device | str | None = None) -> "NormalisedProblem":
        scaled = instance.gain_matrix() * (instance.pmax[None, :] / instance.noise)

        def tensor(values: np.ndarray) -> Tensor:
            return torch.as_tensor(values, dtype=dtype, device=device)

        rate_min = instance.rate_min if instance.rate_min is not None else np.ones(instance.num_links)
        return cls(
            gains=tensor(scaled), weight=tensor(instance.weight), rate_min=tensor(rate_min),
            utility=instance.utility, alpha=float(instance.alpha), penalty=float(instance.penalty),
        )

    @property
    def num_links(self) -> int:
        return int(self.gains.shape[0])

    @property
    def direct(self) -> Tensor:
        """:math:`\\tilde g_{kk}`, ``(K,)``."""
        return torch.diagonal(self.gains)

    @cached_property
    def _cross(self) -> Tensor:
        return self.gains - torch.diag(self.direct)

    @property
    def cross(self) -> Tensor:
        """:math:`\\tilde g` with a zero diagonal, ``(K, K)``."""
        return self._cross

    @cached_property
    def links(self) -> LinkBatch:
        """The same instance as a dense :class:`~._links.LinkBatch`: the form the iterative
        solvers, the learned allocator's refinement and the rates below share."""
        return LinkBatch.dense_of(
            self.direct, self._cross, self.weight, self.rate_min, self.alpha, self.penalty,
            self.utility == "alpha_fair",
        )

    def rates(self, x: Tensor) -> Tensor:
        """Rates in bits/s/Hz of normalised powers ``x`` ``(S, K)`` (one row per candidate), ``(S, K)``."""
        return link_rates(self.links, x.T).T

    def link_utility(self, rates: Tensor, links: Tensor | None = None) -> Tensor:
        """Per-link utilities ``(S, K)`` of rates ``(S, K)``; with ``links`` (indices ``(L,)``)
        the rates ``(S, L)`` are those links'."""
        weight, rate_min = self.weight, self.rate_min
        if links is not None:
            weight, rate_min = weight[links], rate_min[links]
        return link_utility(rates, weight, rate_min, self.alpha, self.penalty, self.utility)

    def objective(self, x: Tensor) -> Tensor:
        """The instance's objective :math:`\\sum_k U_k` per row of ``x`` ``(S, K)``, ``(S,)``."""
        return graph_utility(self.links, x.T)[0]

    def slope(self, rates: Tensor) -> Tensor:
        r""":math:`\partial U_k / \partial r_k = w_k f'(r_k)` per link of rates ``(S, K)``: the
        weights of the weighted-sum-rate step that is a stationary point of the utility."""
        return utility_slope(self.links, rates.T).T
