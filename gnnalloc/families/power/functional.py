r"""Power control in an interference channel as pure, batched, differentiable tensor functions.

:math:`K` transmitter-receiver links share a band. With powers :math:`p_k \ge 0`, power gains
:math:`g_{kj}` from link :math:`j`'s transmitter to link :math:`k`'s receiver and receiver noise
power :math:`\sigma^2`, link :math:`k` achieves (bits/s/Hz)

.. math::

    \mathrm{SINR}_k = \frac{g_{kk} p_k}{\sigma^2 + \sum_{j \ne k} g_{kj} p_j},
    \qquad r_k = \log_2(1 + \mathrm{SINR}_k).

Dense functions take gains ``G`` of shape ``(B, K, K)`` (row = receiver, column = transmitter,
diagonal = direct gains), powers ``p`` ``(B, K)`` and noise as a scalar, a 0-d tensor or ``(B,)``.
Batches of instances with different :math:`K` are padded: ``mask`` ``(B, K)`` is ``True`` on real
links; a padded link transmits nothing, interferes with nobody and gets rate and utility 0.

Real path losses put gains anywhere in 1e-15..1. SINR is a ratio of gains times powers, so every
function divides numerator and denominator by the noise first (noise-normalised gains
:math:`g_{kj}/\sigma^2`); the interference sum then never adds terms of wildly different scale
to a tiny noise, and float32 works as well as float64 on real path losses.

These are the padded-batch forms for users; the solvers, the learned allocator and ``score``
iterate on :class:`~gnnalloc.families.power._links.LinkBatch` (noise- and power-normalised, sparse
or dense interference), whose rates the tests check against :func:`link_rates`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gnnalloc.core import InputError, resource_utility

__all__ = [
    "UTILITIES", "link_rates", "link_utility", "sinr", "split_sinr",
    "total_utility", "weighted_sum_rate",
]

#: The utilities a power-control instance can ask for.
UTILITIES = ("sum_rate", "alpha_fair")

_LN2 = math.log(2.0)


def _noise_column(noise: Tensor | float, like: Tensor) -> Tensor:
    """Noise as ``(B, 1)`` (or ``()``) in ``like``'s dtype and device, for broadcasting."""
    noise_t = torch.as_tensor(noise, dtype=like.dtype, device=like.device)
    return noise_t.unsqueeze(-1) if noise_t.dim() == 1 else noise_t


def _masked_power(power: Tensor, mask: Tensor | None) -> Tensor:
    return power if mask is None else torch.where(mask, power, torch.zeros_like(power))


def sinr(gains: Tensor, power: Tensor, noise: Tensor | float, mask: Tensor | None = None) -> Tensor:
    r"""Per-link SINR :math:`g_{kk} p_k / (\sigma^2 + \sum_{j \ne k} g_{kj} p_j)`.

    Args:
        gains: ``(B, K, K)``, row = receiver, column = transmitter, ``>= 0``.
        power: ``(B, K)``, ``>= 0``.
        noise: :math:`\sigma^2 > 0`, a scalar or ``(B,)``.
        mask: ``(B, K)`` booleans, ``True`` on real links; padded links get SINR 0.

    Returns:
        ``(B, K)`` SINRs, differentiable in ``gains`` and ``power``.
    """
    power = _masked_power(power, mask)
    scaled = gains / _noise_column(noise, gains).unsqueeze(-1)  # g / sigma^2, scale-free
    # The diagonal is removed before the sum rather than subtracted after it: subtracting
    # g_kk p_k from the full sum cancels catastrophically when the direct gain dominates.
    off = scaled.masked_fill(torch.eye(gains.shape[-1], dtype=torch.bool, device=gains.device), 0.0)
    out = split_sinr(torch.diagonal(scaled, dim1=-2, dim2=-1), off, power)
    return out if mask is None else torch.where(mask, out, torch.zeros_like(out))


def split_sinr(direct: Tensor, cross: Tensor, power: Tensor) -> Tensor:
    r"""SINR :math:`d_k p_k / (1 + \sum_j c_{kj} p_j)` from noise-normalised gains split into
    the direct gains ``direct`` ``(..., K)`` and the cross gains ``cross`` ``(K, K)`` or
    ``(B, K, K)`` with a zero diagonal; ``power`` ``(..., K)``.

    The kernel of :func:`sinr`; solvers that iterate on one instance with many power vectors
    (rows of ``power``) split the gains once and call this.
    """
    interference = torch.matmul(cross, power.unsqueeze(-1)).squeeze(-1)
    return direct * power / (1.0 + interference)


def link_rates(
    gains: Tensor, power: Tensor, noise: Tensor | float, mask: Tensor | None = None
) -> Tensor:
    r"""Per-link rates :math:`r_k = \log_2(1 + \mathrm{SINR}_k)` in bits/s/Hz, ``(B, K)``.

    Arguments as :func:`sinr`; padded links get rate 0.
    """
    return torch.log1p(sinr(gains, power, noise, mask)) / _LN2


def weighted_sum_rate(
    gains: Tensor,
    power: Tensor,
    noise: Tensor | float,
    weights: Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    r""":math:`\sum_k w_k r_k` per instance, ``(B,)`` (unit weights when ``weights`` is None)."""
    rates = link_rates(gains, power, noise, mask)
    return (rates if weights is None else weights * rates).sum(-1)


def link_utility(
    rates: Tensor,
    weights: Tensor | None = None,
    rate_min: Tensor | None = None,
    alpha: Tensor | float = 1.0,
    penalty: Tensor | float = 10.0,
    utility: str = "sum_rate",
    mask: Tensor | None = None,
) -> Tensor:
    r"""Per-link utility :math:`U_k`, the same shape as ``rates``.

    * ``"sum_rate"``: :math:`U_k = w_k r_k`.
    * ``"alpha_fair"``: :math:`U_k = w_k f(r_k; m_k)` with the library's α-fair kernel
      :func:`gnnalloc.core.resource_utility` (:math:`\ln(r/m)` or
      :math:`((r/m)^{1-\alpha} - 1)/(1 - \alpha)` above the minimum rate :math:`m_k`, slope
      ``penalty`` :math:`\cdot (r - m)/m` below it), the function the edge family uses.

    Args:
        rates: per-link rates, e.g. ``(B, K)``.
        weights: :math:`w_k > 0`, broadcastable to ``rates``; ``None`` for 1.
        rate_min: :math:`m_k > 0`, required for ``"alpha_fair"`` (ignored for ``"sum_rate"``).
        alpha, penalty: the α-fair parameters (scalars or broadcastable tensors).
        utility: ``"sum_rate"`` or ``"alpha_fair"``.
        mask: ``True`` on real links; padded links get utility 0 (their ``rate_min`` may be 0).

    Raises:
        ValueError: naming ``utility`` for an unknown utility, ``rate_min`` when alpha-fair
            has none.
    """
    if utility == "sum_rate":
        out = rates
    elif utility == "alpha_fair":
        if rate_min is None:
            raise InputError("rate_min: required for the alpha_fair utility")
        minimum = torch.as_tensor(rate_min, dtype=rates.dtype, device=rates.device)
        if mask is not None:
            # A padded link's minimum may be 0; give it 1 so that r/m stays finite (the
            # result is masked below, and where() would still propagate NaN gradients).
            minimum = torch.where(mask, minimum, torch.ones_like(minimum))
        out = resource_utility(rates, minimum, penalty, alpha)
    else:
        raise InputError(f"utility: unknown {utility!r}, expected one of {', '.join(UTILITIES)}")
    if weights is not None:
        out = weights * out
    return out if mask is None else torch.where(mask, out, torch.zeros_like(out))


def total_utility(
    gains: Tensor,
    power: Tensor,
    noise: Tensor | float,
    weights: Tensor | None = None,
    rate_min: Tensor | None = None,
    alpha: Tensor | float = 1.0,
    penalty: Tensor | float = 10.0,
    utility: str = "sum_rate",
    mask: Tensor | None = None,
) -> Tensor:
    r"""The objective :math:`\sum_k U_k` per instance, ``(B,)``: :func:`link_rates` then
    :func:`link_utility` summed over links (arguments as there)."""
    rates = link_rates(gains, power, noise, mask)
    return link_utility(rates, weights, rate_min, alpha, penalty, utility, mask).sum(-1)
