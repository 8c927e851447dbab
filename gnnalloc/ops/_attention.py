r"""Node-level attention of one relation in one compiled kernel (the inference path of
:class:`gnnalloc.nn.RelationAttention`): per edge :math:`e = (j \to i)` and head :math:`h`,

.. math::

    a_{e,h} = \mathrm{LeakyReLU}\big(\langle a^{src}_h, v_{j,h} \rangle + t_{i,h}
        + \langle (W^e_h)^\top a^e_h, x_e \rangle\big), \qquad
    \alpha_{e,h} = \frac{\exp(a_{e,h} - \max_{e' \to i} a_{e',h})}
        {\sum_{e' \to i} \exp(a_{e',h} - \max_{e'' \to i} a_{e'',h}) + 10^{-16}},

.. math::

    \text{out}_{i,h} = \mathrm{ELU}\Big(\sum_{e \to i} \alpha_{e,h} v_{j,h}
        + W^e_h \sum_{e \to i} \alpha_{e,h} x_e + b_h\Big),

with :math:`v = W h` the source messages and :math:`t_{i,h} = \langle a^{dst}_h, h_i\rangle` the
target terms (the linear maps stay matrix products in torch), and the edge terms only where the
relation has edge features :math:`x_e`. The softmax is :func:`~gnnalloc.ops.segment_softmax`'s (the
same shift and :math:`10^{-16}`). A target without edges gets :math:`\mathrm{ELU}(b)`.

Why: at the encoder's sizes (a few thousand edges, 32 channels) the torch version of this is a
chain of about forty small operations (gathers, scatters, einsums), each costing more in dispatch
and allocation than in arithmetic (measured in ``benchmarks/RESULTS.md``). Here it is one kernel
call: a pass over the edges checking their indices, then four (logits and maxima; exponentials
and their sums; weights and weighted messages; weighted edge features) and two over the targets
(the :math:`10^{-16}`; the edge-feature term and the bias). Every product and sum is in the
tensors' own dtype and the sums over edges run in the torch version's order (edges as given), so
the two agree to rounding: the short sums over a head's channels and over the edge features run
in another order, and the exponential and the linear maps' products are other implementations.
The ELU is torch's, whose vectorised loop is faster than a scalar ``expm1`` per entry.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from gnnalloc.core import InputError, compiled

__all__ = ["RELATION_ATTENTION_DTYPES", "load_relation_attention", "relation_attention"]

#: The dtypes :func:`relation_attention` computes in.
RELATION_ATTENTION_DTYPES = (torch.float32, torch.float64)


def relation_attention(
    values: Tensor,
    logit_dst: Tensor,
    att_src: Tensor,
    edge_index: Tensor,
    bias: Tensor,
    negative_slope: float = 0.2,
    edge_attr: Tensor | None = None,
    edge_weight: Tensor | None = None,
    att_edge: Tensor | None = None,
) -> Tensor:
    r"""The attention-weighted messages of one relation (module docstring), ``(N_dst, H * D)``.

    Args:
        values: source messages :math:`v = W h`, ``(N_src, H, D)``.
        logit_dst: target terms :math:`t_{i,h}`, ``(N_dst, H)``.
        att_src: :math:`a^{src}`, ``(H, D)``.
        edge_index: ``(2, E)`` long, row 0 the sources, row 1 the targets; edges in any order,
            repeats allowed, ``E`` may be 0.
        bias: :math:`b`, ``(H * D,)``.
        negative_slope: slope of the LeakyReLU.
        edge_attr: edge features :math:`x_e`, ``(E, F)`` (any real dtype: cast to the values'),
            or ``None`` for a relation without them.
        edge_weight: :math:`W^e`, ``(H * D, F)`` (head ``h`` is rows ``h D`` to ``(h + 1) D``, as
            an :class:`~torch.nn.Linear` weight); with ``edge_attr``.
        att_edge: :math:`a^e`, ``(H, D)``; with ``edge_attr``.

    Inference only: CPU tensors of one dtype, float32 or float64, and no autograd (the result
    has no history, so it raises where autograd would need one). Training, autograd and other
    devices have the torch version (:class:`gnnalloc.nn.RelationAttention`).

    Raises:
        ValueError: naming the argument: another shape, dtype or device, a missing edge part,
            or a tensor that requires grad while grad mode is on.
        IndexError: an edge index outside its node range.
    """
    dtype = values.dtype
    if dtype not in RELATION_ATTENTION_DTYPES:
        raise InputError(f"values: expected float32 or float64, got {dtype}")
    if values.dim() != 3:
        raise InputError(f"values: expected (N_src, H, D), got shape {tuple(values.shape)}")
    num_src, heads, dim = values.shape
    num_dst = logit_dst.shape[0]
    if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.dtype != torch.long or not edge_index.is_cpu:
        raise InputError(f"edge_index: expected (2, E) long on the CPU, got {tuple(edge_index.shape)} {edge_index.dtype} on {edge_index.device}")
    num_edges = edge_index.shape[1]
    if (edge_attr is None) != (edge_weight is None) or (edge_attr is None) != (att_edge is None):
        raise InputError("edge_attr: edge_attr, edge_weight and att_edge go together (all or none)")
    expected = [
        ("values", values, values.shape), ("logit_dst", logit_dst, (num_dst, heads)),
        ("att_src", att_src, (heads, dim)), ("bias", bias, (heads * dim,)),
    ]
    if edge_attr is not None:
        if edge_weight.dim() != 2:
            raise InputError(f"edge_weight: expected (H * D, F), got shape {tuple(edge_weight.shape)}")
        features = edge_weight.shape[1]  # the relation's feature width: a wrong edge_attr is named
        expected += [
            ("edge_weight", edge_weight, (heads * dim, features)), ("edge_attr", edge_attr, (num_edges, features)),
            ("att_edge", att_edge, (heads, dim)),
        ]
    grad = torch.is_grad_enabled()
    for name, tensor, shape in expected:
        if tensor.shape != shape:
            raise InputError(f"{name}: expected shape {shape}, got {tuple(tensor.shape)}")
        if not tensor.is_cpu or tensor.layout != torch.strided:
            raise InputError(f"{name}: expected a dense CPU tensor, got {tensor.layout} on {tensor.device}")
        if tensor.dtype != dtype and tensor is not edge_attr:
            raise InputError(f"{name}: expected {dtype} (the dtype of values), got {tensor.dtype}")
        if grad and tensor.requires_grad:
            raise InputError(f"{name}: requires grad, and this kernel is for inference (under torch.no_grad())")
    scalar = np.float32 if dtype == torch.float32 else np.float64
    if edge_attr is None:  # no features: F = 0, and the loops over them are empty
        attr, weight = np.empty((num_edges, 0), dtype=scalar), np.empty((heads * dim, 0), dtype=scalar)
        att_e = np.empty((heads, dim), dtype=scalar)
    else:
        attr, weight, att_e = _array(edge_attr.to(dtype)), _array(edge_weight), _array(att_edge)
    out = torch.empty(num_dst, heads * dim, dtype=dtype)
    _attention(
        _array(values), _array(logit_dst), _array(att_src), _array(edge_index), attr, weight, att_e,
        _array(bias), scalar(negative_slope), out.numpy(),
    )
    # torch's vectorised ELU (module docstring).
    return torch.nn.functional.elu_(out)


@functools.cache
def load_relation_attention() -> None:
    """Load :func:`relation_attention`'s compiled kernel now, for float32 and float64: it compiles
    on a machine's first use and loads from numba's cache, much faster, in every new process after
    that (``benchmarks/RESULTS.md``). Call it to pay that at start-up (the server does, through the edge
    family's warm-up). Idempotent."""
    edge_index = torch.tensor([[0, 1, 1], [0, 0, 1]])
    for dtype in RELATION_ATTENTION_DTYPES:
        def ones(*shape: int) -> Tensor:
            return torch.ones(shape, dtype=dtype)

        with torch.no_grad():
            relation_attention(ones(2, 1, 2), ones(2, 1), ones(1, 2), edge_index, ones(2), 0.2, ones(3, 1), ones(2, 1), ones(1, 2))


def _array(tensor: Tensor) -> np.ndarray:
    """A C-contiguous array on ``tensor``'s memory (a copy only if it is not contiguous)."""
    if tensor.requires_grad:
        tensor = tensor.detach()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    return tensor.numpy()


# fastmath explicitly off (see gnnalloc.core.compiled): the products and sums round as torch's.
@compiled(fastmath=False)
def _attention(
    values, logit_dst, att_src, edge_index, edge_attr, edge_weight, att_edge, bias, slope, out,
):  # pragma: no cover - compiled (the tests compare it with the torch version)
    """:func:`relation_attention` before its ELU, into ``out`` ``(N_dst, H * D)``; arrays
    C-contiguous, one float dtype (``slope`` a scalar of it), indices int64 (checked here)."""
    src, dst = edge_index[0], edge_index[1]
    num_src, heads, dim = values.shape
    num_dst = logit_dst.shape[0]
    num_edges = src.shape[0]
    features = edge_attr.shape[1]
    zero, eps = values.dtype.type(0), values.dtype.type(1e-16)
    for e in range(num_edges):
        if src[e] < 0 or src[e] >= num_src or dst[e] < 0 or dst[e] >= num_dst:
            raise IndexError("edge_index: an edge index is out of range")
    # <a_src, v_j> per source and head.
    logit_src = np.empty((num_src, heads), values.dtype)
    for j in range(num_src):
        for h in range(heads):
            s = zero
            for d in range(dim):
                s += values[j, h, d] * att_src[h, d]
            logit_src[j, h] = s
    # <a_e, W_e x_e> = x_e . (W_e^T a_e): (F, H), never the (E, H, D) edge messages.
    edge_att = np.empty((features, heads), values.dtype)
    for f in range(features):
        for h in range(heads):
            s = zero
            for d in range(dim):
                s += edge_weight[h * dim + d, f] * att_edge[h, d]
            edge_att[f, h] = s
    # Logits and each target's largest.
    logit = np.empty((num_edges, heads), values.dtype)
    peak = np.full((num_dst, heads), -np.inf, values.dtype)
    for e in range(num_edges):
        j, i = src[e], dst[e]
        for h in range(heads):
            a = logit_src[j, h] + logit_dst[i, h]
            if features:
                s = zero
                for f in range(features):
                    s += edge_attr[e, f] * edge_att[f, h]
                a = a + s
            if not a > zero:
                a = a * slope
            logit[e, h] = a
            if a > peak[i, h]:
                peak[i, h] = a
    # Shifted exponentials (in place of the logits) and their sums.
    total = np.zeros((num_dst, heads), values.dtype)
    for e in range(num_edges):
        i = dst[e]
        for h in range(heads):
            w = math.exp(logit[e, h] - peak[i, h])
            logit[e, h] = w
            total[i, h] += w
    for i in range(num_dst):
        for h in range(heads):
            total[i, h] += eps
    # The weights (in place of the exponentials) and the weighted sums of the messages, edge by
    # edge: an edge's weights first, so that the loops over channels vectorise.
    out[:] = zero
    alpha = np.empty(heads, values.dtype)
    for e in range(num_edges):
        j, i = src[e], dst[e]
        for h in range(heads):
            alpha[h] = logit[e, h] / total[i, h]
            logit[e, h] = alpha[h]
        for h in range(heads):
            a = alpha[h]
            for d in range(dim):
                out[i, h * dim + d] += a * values[j, h, d]
    # The weighted sums of the edge features (a loop of their own, so that the loop over the
    # features vectorises).
    pooled = np.zeros((num_dst, heads, features), values.dtype)
    if features:
        for e in range(num_edges):
            i = dst[e]
            for h in range(heads):
                a = logit[e, h]
                for f in range(features):
                    pooled[i, h, f] += a * edge_attr[e, f]
    # W_e (sum alpha x_e) per head (W_e read as (H, F, D), so that the sums over F run along D)
    # and the bias.
    weight_t = np.empty((heads, features, dim), values.dtype)
    for h in range(heads):
        for f in range(features):
            for d in range(dim):
                weight_t[h, f, d] = edge_weight[h * dim + d, f]
    term = np.empty(dim, values.dtype)
    for i in range(num_dst):
        for h in range(heads):
            if features:
                term[:] = zero
                for f in range(features):
                    p = pooled[i, h, f]
                    for d in range(dim):
                        term[d] += p * weight_t[h, f, d]
                for d in range(dim):
                    out[i, h * dim + d] = out[i, h * dim + d] + term[d]
            for d in range(dim):
                out[i, h * dim + d] = out[i, h * dim + d] + bias[h * dim + d]
