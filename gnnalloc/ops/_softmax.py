r"""Softmax over the entries that share an index (attention over a node's incoming edges).

.. math::  \operatorname{softmax}(a)_e = \frac{\exp(a_e - \max_{e' : i(e') = i(e)} a_{e'})}
    {\sum_{e' : i(e') = i(e)} \exp(a_{e'} - \max_{\cdot} a) + 10^{-16}}

The same formula (and the same :math:`10^{-16}`) as :func:`torch_geometric.utils.softmax`, so the
two agree bit for bit; this one flattens ``(E, H)`` logits to one index per (target, head) and
uses 1-D scatters, which on CPU are cheaper than the broadcast 2-D scatters at the encoder's
relation sizes.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["segment_softmax"]


def segment_softmax(logit: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Softmax of ``logit`` ``(E,)`` or ``(E, H)`` over the rows sharing ``index`` ``(E,)``.

    Args:
        logit: scores, one row per entry (e.g. per edge), optionally one column per head.
        index: segment (e.g. target node) of each row, in ``[0, num_segments)``.
        num_segments: number of segments.

    Returns:
        Weights of ``logit``'s shape that sum to 1 (up to the ``1e-16`` guard) within each
        segment and head. The maximum is detached, as it only shifts the exponent.
    """
    if logit.dim() == 1:
        heads, flat_index, flat = 1, index, logit
    else:
        heads = logit.shape[1]
        offsets = torch.arange(heads, device=index.device)
        flat_index = (index.unsqueeze(1) * heads + offsets).reshape(-1)
        flat = logit.reshape(-1)
    size = num_segments * heads
    peak = flat.new_zeros(size).scatter_reduce_(0, flat_index, flat.detach(), "amax", include_self=False)
    exp = (flat - peak.index_select(0, flat_index)).exp()
    total = exp.new_zeros(size).index_add_(0, flat_index, exp) + 1e-16
    return (exp / total.index_select(0, flat_index)).view_as(logit)
