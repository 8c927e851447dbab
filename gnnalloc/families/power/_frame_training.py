r"""Training the per-slot allocator *through* a proportional-fair frame.

:func:`~._frame.proportional_fair_frame` asks its per-slot allocator the weighted sum rate with
the scheduler's weights :math:`w^{(t)}_k \propto w_k (\bar r^{(<t)}_k + \epsilon)^{-\alpha}` and
mixes the slots with the time shares :math:`\theta_t` of ``fair_time``. Here the same frame is
built from the learned allocator on a batch of graphs, differentiably in its powers: each slot is
the model's forward pass on the batch with that slot's weights (:func:`slot_graph`), and the
frame's average rates

.. math::  \bar r_k = \sum_t \theta_t\, r_k\big(p^{(t)}\big)

carry the gradient of any objective of the average rates back to every slot. The weights of the
next slot are computed from the detached rates (the classical scheduler's rule: they steer the
slots, they are not optimised). A loss on :math:`\bar r` (e.g. the efficiency-fairness pair of
:mod:`gnnalloc.fairness`) then trains the allocator for the frame it serves in, rather than for
one power vector.
"""

from __future__ import annotations

from collections.abc import Callable
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from gnnalloc.core import InputError, check_fraction
from gnnalloc.families.power._frame import check_frame_settings, slot_offset, slot_weights
from gnnalloc.families.power._graph import LINK_FEATURES, link_batch
from gnnalloc.families.power._links import link_rates
from gnnalloc.ops import segment_mean

__all__ = ["frame_average_rates", "slot_graph"]

_WEIGHT = LINK_FEATURES.index("weight")
#: The features of the α-fair utility, which a slot's weighted sum rate does not have.
_FAIR_FEATURES = [LINK_FEATURES.index(name) for name in ("alpha_fair", "log_alpha", "log_penalty", "rate_min_share")]


def slot_graph(graph: HeteroData, weight: Tensor) -> HeteroData:
    """A shallow copy of ``graph`` (one instance or a batch) that asks the weighted sum rate with
    ``weight`` ``(N,)``: the links' ``weight`` and weight feature (each weight over its
    instance's mean, as :func:`~._graph.build_link_graph` computes it), the α-fair utility and its
    features off. Channels and edges are shared with ``graph``."""
    links = link_batch(graph)
    copy = graph.__copy__()  # new stores sharing the tensors
    store = copy["link"]
    x = store.x.clone()
    mean = segment_mean(weight, links.batch, links.num_graphs)[links.batch]
    x[:, _WEIGHT] = (weight / mean).to(x.dtype)
    x[:, _FAIR_FEATURES] = 0.0
    store.x = x
    store.weight = weight
    store.rate_min = torch.ones_like(store.rate_min)
    store.fair = torch.zeros_like(store.fair)
    return copy


def frame_average_rates(model: Callable[[HeteroData], list[Tensor]], graph: HeteroData, slots: int,
                        fair_time: float | Tensor, alpha: float = 1.0) -> tuple[Tensor, Tensor]:
    r"""The frame of ``model``'s answers on ``graph`` and its average rates, differentiably.

    Slot 1 asks the weighted sum rate with the instances' own weights, slot :math:`t > 1` with
    :func:`~._frame.slot_weights` at the mean rates of the slots before it (detached), as
    :func:`~._frame.proportional_fair_frame` does with any allocator; ``model(graph)`` is the
    :class:`~._model.PowerAllocator` forward pass (power shares after each refinement step).
    At ``fair_time`` :math:`\lambda` (a number, or one per instance ``(num_graphs,)``, e.g. the
    model's :meth:`~._model.PowerAllocator.fair_time`, differentiable too) the average is that of
    :func:`~._allocation.frame_time_shares`,

    .. math::  \bar r = (1 - \lambda)\, r^{(1)} + \frac{\lambda}{T} \sum_t r^{(t)}.

    Returns:
        ``(final, start)``, each ``(N,)``: :math:`\bar r` with the slots' refined powers, and
        the same with the encoder's start powers of each slot.

    Raises:
        ValueError: naming ``slots``, ``alpha`` or ``fair_time``.
    """
    slots, alpha = check_frame_settings(slots, alpha)
    links = link_batch(graph)
    if isinstance(fair_time, Tensor):
        if fair_time.shape != (links.num_graphs,):
            raise InputError(f"fair_time: expected one per instance ({links.num_graphs},), got {tuple(fair_time.shape)}")
        spread = fair_time.to(links.snr.dtype)[links.batch]
    else:
        check_fraction("fair_time", fair_time)
        spread = links.snr.new_full((links.num_links,), float(fair_time))
    weight = links.weight
    served = links.snr.new_zeros(links.num_links)
    offset = links.snr.new_zeros(links.num_graphs)
    firsts, means = [], [0.0, 0.0]
    for slot in range(slots):
        if slot > 0:
            weight = slot_weights(links.weight, served / slot, alpha, offset, links.batch, links.num_graphs)
        shares = model(slot_graph(graph, weight))
        # Rates depend on the channels alone (not on the utility the slot asks): the batch's own.
        rates = link_rates(links, shares[-1])
        start_rates = link_rates(links, shares[0])
        if slot == 0:
            firsts = [rates, start_rates]
            offset = slot_offset(rates.detach(), links.batch, links.num_graphs)
        means = [means[0] + rates / slots, means[1] + start_rates / slots]
        served = served + rates.detach()
    final, start = ((1.0 - spread) * first + spread * mean for first, mean in zip(firsts, means))
    return final, start
