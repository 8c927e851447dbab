r"""Weighted sums of gathered rows: message passing's aggregation step,

.. math::  \text{out}_{j,h} = \sum_{e : \text{dst}_e = j} w_{e,h}\, x_{\text{src}_e, h},

per head :math:`h` (the attention-weighted mean of a node's incoming messages)."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

__all__ = ["gather_weighted_sum"]

#: The CSR path serves sums of at least this many message entries ``E * H * D``.
_CSR_MIN_ENTRIES = 1 << 18

# torch warns once per process, at the first CSR tensor, that the layout is in beta; the one
# product used here (CSR times dense) is long-standing. The warning is spent here, at import,
# rather than silenced around every call (catch_warnings is not thread-safe, and the server runs
# models in threads) or by a global filter that would outlive this module's use.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    torch.sparse_csr_tensor(torch.zeros(2, dtype=torch.long), torch.zeros(1, dtype=torch.long), torch.ones(1))


def gather_weighted_sum(weight: Tensor, values: Tensor, src: Tensor, dst: Tensor, num_dst: int) -> Tensor:
    r""":math:`\sum_{e: dst_e = j} w_{e,h} x_{src_e,h}` (module docstring), ``(num_dst, H, D)``.

    Args:
        weight: ``(E, H)`` edge weights per head.
        values: ``(N_src, H, D)`` source rows.
        src: ``(E,)`` long, the row of ``values`` each edge reads.
        dst: ``(E,)`` long, the output row each edge adds to.
        num_dst: number of output rows (rows without edges are 0).

    Without autograd, on CPU or CUDA in float32 or float64, with ``dst`` non-decreasing (edges
    grouped by target, as graph builders usually emit them) and at least ``2**18`` message
    entries, the sum is a sparse-times-dense product per head over a CSR matrix of the weights:
    no ``(E, H, D)`` buffer of messages, several times faster on large graphs. It equals the
    gather-and-add path (which serves every other case and autograd, and raises torch's error
    on indices out of range) to rounding, and bit for bit where torch's CPU kernel adds each
    row's entries in order (as on AMD EPYC; MKL on Intel Xeon vectorises them).
    """
    heads = weight.shape[1]
    differentiable = torch.is_grad_enabled() and (weight.requires_grad or values.requires_grad)
    # CSR products are implemented for CPU and CUDA tensors of one float32/64 dtype (not every
    # backend or reduced precision has them); setting one up per head has a fixed cost that only
    # pays off from about this many message entries.
    large = dst.numel() * values.shape[1] * values.shape[2] >= _CSR_MIN_ENTRIES
    supported = values.device.type in ("cpu", "cuda") and values.dtype in (torch.float32, torch.float64)
    if supported and weight.dtype == values.dtype and not differentiable and large and dst.numel():
        # One read-back for every check: the CSR product does not bound-check its indices.
        grouped, in_range = torch.stack([
            (dst[1:] >= dst[:-1]).all(),
            (dst[0] >= 0) & (dst[-1] < num_dst) & (src.min() >= 0) & (src.max() < values.shape[0]),
        ]).tolist()
        if grouped and in_range:
            return _csr_sum(weight, values, src, dst, num_dst)
    message = values.index_select(0, src)
    if differentiable:
        message = message * weight.unsqueeze(-1)
    else:
        message.mul_(weight.unsqueeze(-1))  # reuse the gathered buffer (allocations dominate)
    return values.new_zeros(num_dst, heads, values.shape[2]).index_add_(0, dst, message)


def _csr_sum(weight: Tensor, values: Tensor, src: Tensor, dst: Tensor, num_dst: int) -> Tensor:
    """:func:`gather_weighted_sum` as one CSR product per head (``dst`` sorted, indices valid)."""
    counts = torch.bincount(dst, minlength=num_dst)
    row_start = torch.zeros(num_dst + 1, dtype=torch.long, device=dst.device)
    torch.cumsum(counts, 0, out=row_start[1:])
    out = values.new_empty(num_dst, weight.shape[1], values.shape[2])
    for h in range(weight.shape[1]):
        matrix = torch.sparse_csr_tensor(
            row_start, src, weight[:, h].contiguous(), size=(num_dst, values.shape[0]), check_invariants=False,
        )
        out[:, h] = matrix @ values[:, h].contiguous()
    return out
