r"""Link batches: power-control instances in noise-normalised sparse form, and the WMMSE step.

Every quantity is scale-free. With :math:`\sigma^2` the noise power, :math:`\bar p_k` link
:math:`k`'s power limit and :math:`q_k = p_k / \bar p_k \in [0, 1]` its power as a share of it,

.. math::

    \mathrm{snr}_k = \frac{g_{kk} \bar p_k}{\sigma^2}, \qquad
    \mathrm{inr}_{kj} = \frac{g_{kj} \bar p_j}{\sigma^2}, \qquad
    \mathrm{sinr}_k = \frac{\mathrm{snr}_k\, q_k}{1 + \sum_{j \ne k} \mathrm{inr}_{kj}\, q_j},

so gains spanning :math:`10^{-15}..1` become numbers around one, and links of many instances
(graphs of a batch) are one list of nodes with one list of interference edges ``(rx, tx)``.

The WMMSE iteration (Shi, Razaviyayn, Luo and He, 2011) in these units, with
:math:`v_k = \sqrt{q_k}`, effective channels :math:`h_{kk} = \sqrt{\mathrm{snr}_k}`,
:math:`|h_{kj}|^2 = \mathrm{inr}_{kj}`, unit noise and weights :math:`a_k`:

.. math::

    u_k = \frac{h_{kk} v_k}{1 + \sum_j |h_{kj}|^2 v_j^2}, \qquad
    w_k = \frac{1}{1 - u_k h_{kk} v_k}, \qquad
    v_k \leftarrow \Big[\frac{a_k w_k u_k h_{kk}}{\sum_j a_j w_j u_j^2 |h_{jk}|^2}\Big]_0^1,

(sums over :math:`j` include :math:`j = k`). It increases :math:`\sum_k a_k \log(1 + \mathrm{sinr}_k)`
monotonically. For a concave utility :math:`U_k = w_k f(r_k)` of the rate, re-weighting
:math:`a_k = w_k f'(r_k)` at each step is the minorise-maximise form: the step increases the
linearised utility, the standard route from weighted sum rate to α-fair power control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse
import torch
from torch import Tensor

from gnnalloc.core import InputError, resource_utility
# Importing gnnalloc.ops also spends torch's one-time "sparse CSR support is in beta" warning
# (gnnalloc/ops/_gather.py): the CSR products below need no catch_warnings, which is not
# thread-safe (the server runs learned solves side by side).
from gnnalloc.ops import segment_rank

if TYPE_CHECKING:
    from gnnalloc.families.power._instance import PowerInstance

__all__ = [
    "LinkBatch", "fp_step", "graph_utility", "lift_to_floor", "line_search", "link_rates", "link_utility",
    "normalised_links", "utility_slope", "wmmse_step",
]

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class LinkBatch:
    """Noise-normalised links of one or more instances (see the module docstring).

    Args:
        snr: :math:`\\mathrm{snr}_k`, ``(N,)``.
        rx, tx: interference edges (transmitter ``tx`` heard at receiver ``rx``), ``(E,)`` long,
            sorted by ``(rx, tx)`` without repeats (:func:`~._graph.build_link_graph` sorts
            them; a PyG batch of sorted graphs stays sorted).
        inr: :math:`\\mathrm{inr}_{rx, tx}`, ``(E,)``.
        weight: utility weight per link, ``(N,)``.
        rate_min: minimum rate per link (bits/s/Hz; only used by the α-fair utility), ``(N,)``.
        alpha, penalty: α-fair parameters per link, ``(N,)``.
        fair: per link, ``True`` for the α-fair utility, ``False`` for the weighted rate, ``(N,)``.
        batch: instance of each link, ``(N,)`` long.
        num_graphs: number of instances.
        dense: the matrix :math:`A` itself, ``(N, N)`` with a zero diagonal, instead of the edge
            list (which is then empty): :meth:`dense_of`, the form the reference solvers
            iterate on, where every pair interferes.

    The interference sums are products with the matrix :math:`A_{kj} = \\mathrm{inr}_{kj}` and
    its transpose: sparse CSR built once per batch from the edge list (one compiled sparse product
    per sum, several times faster than gathering and scattering the edges), or ``dense``.
    """

    snr: Tensor
    rx: Tensor
    tx: Tensor
    inr: Tensor
    weight: Tensor
    rate_min: Tensor
    alpha: Tensor
    penalty: Tensor
    fair: Tensor
    batch: Tensor
    num_graphs: int
    dense: Tensor | None = None

    @classmethod
    def of(cls, instance: "PowerInstance") -> "LinkBatch":
        """One instance in sparse form, every interference entry kept (float64)."""
        snr, rx, tx, inr, rate_min = normalised_links(instance)
        k = instance.num_links

        def full(value: float) -> Tensor:
            return torch.full((k,), value, dtype=torch.float64)

        return cls(
            snr=torch.from_numpy(snr), rx=torch.from_numpy(rx), tx=torch.from_numpy(tx), inr=torch.from_numpy(inr),
            weight=torch.as_tensor(instance.weight, dtype=torch.float64), rate_min=torch.from_numpy(rate_min),
            alpha=full(float(instance.alpha)), penalty=full(float(instance.penalty)),
            fair=torch.full((k,), instance.utility == "alpha_fair"), batch=torch.zeros(k, dtype=torch.long),
            num_graphs=1,
        )

    @classmethod
    def dense_of(
        cls, snr: Tensor, cross: Tensor, weight: Tensor, rate_min: Tensor, alpha: float, penalty: float,
        fair: bool,
    ) -> "LinkBatch":
        """One instance with the dense matrix ``cross`` :math:`= A` ``(K, K)`` (zero diagonal)
        and per-instance utility parameters."""
        k = int(snr.shape[0])

        def full(value: float | bool, dtype: torch.dtype) -> Tensor:
            return torch.full((k,), value, dtype=dtype, device=snr.device)

        empty = torch.zeros(0, dtype=torch.long, device=snr.device)
        return cls(
            snr=snr, rx=empty, tx=empty, inr=snr.new_zeros(0), weight=weight, rate_min=rate_min,
            alpha=full(alpha, snr.dtype), penalty=full(penalty, snr.dtype), fair=full(fair, torch.bool),
            batch=torch.zeros(k, dtype=torch.long, device=snr.device), num_graphs=1, dense=cross,
        )

    @property
    def num_links(self) -> int:
        return int(self.snr.shape[0])

    @cached_property
    def any_fair(self) -> bool:
        """Whether any link has the α-fair utility (else the weighted rate needs no α-fair terms)."""
        return bool(self.fair.any())

    @cached_property
    def matrix(self) -> Tensor:
        """:math:`A`, ``(N, N)``: sparse CSR with :math:`A_{rx, tx} = \\mathrm{inr}`, or ``dense``."""
        if self.dense is not None:
            return self.dense
        return _csr(self.rx, self.tx, self.inr, self.num_links)

    @cached_property
    def matrix_t(self) -> Tensor:
        """:math:`A^\\top`, ``(N, N)``."""
        if self.dense is not None:
            return self.dense.T
        return _transposed(self.matrix)


def normalised_links(instance: "PowerInstance") -> tuple[np.ndarray, ...]:
    """``(snr, rx, tx, inr, rate_min)`` of ``instance`` in the units of the module docstring
    (float64; ``rx``, ``tx`` int64 and sorted by ``(rx, tx)``; ``rate_min`` 1 where the instance
    has none): the one normalisation the graph builder and :meth:`LinkBatch.of` share."""
    k = instance.num_links
    rx, tx = instance.cross_rx.astype(np.int64, copy=False), instance.cross_tx.astype(np.int64, copy=False)
    gain = instance.cross_gain
    if not instance.pairs_in_order:  # CSR rows need (rx, tx) order; parsers and generators keep it
        order = np.argsort(rx * k + tx, kind="stable")
        rx, tx, gain = rx[order], tx[order], gain[order]
    inr = gain * instance.pmax[tx] / instance.noise
    snr = instance.direct_gain * instance.pmax / instance.noise
    rate_min = instance.rate_min if instance.rate_min is not None else np.ones(k)
    return (snr.astype(np.float64), rx, tx, inr.astype(np.float64, copy=False),
            np.asarray(rate_min, dtype=np.float64))


def _csr(row: Tensor, col: Tensor, value: Tensor, size: int) -> Tensor:
    """The CSR matrix of entries already sorted by ``(row, col)`` (no sort, no coalescing).

    Its indices are int32 where they fit: the products read them once per entry, and the
    narrower index makes each product markedly faster on CPU."""
    index = torch.int32 if value.numel() < torch.iinfo(torch.int32).max else torch.long
    crow = torch.zeros(size + 1, dtype=index, device=row.device)
    crow[1:] = torch.cumsum(torch.bincount(row, minlength=size), 0)
    return torch.sparse_csr_tensor(crow, col.to(index), value, (size, size), check_invariants=False)


def _transposed(matrix: Tensor) -> Tensor:
    """The CSR matrix of ``matrix.T`` for a CSR ``matrix`` (its entries regrouped by column).

    On CPU, scipy's CSR-to-CSC conversion: a linear-time counting pass, several times faster
    than sorting the entries, which is what the other devices do (a stable sort by column keeps
    each new row's columns ascending)."""
    crow, col, value = matrix.crow_indices(), matrix.col_indices(), matrix.values()
    size = matrix.shape[0]
    if matrix.device.type == "cpu" and not value.requires_grad:
        csc = scipy.sparse.csr_matrix((value.numpy(), col.numpy(), crow.numpy()), shape=(size, size)).tocsc()
        crow, col, value = (torch.from_numpy(a) for a in (csc.indptr, csc.indices, csc.data))
        # scipy may widen the index type; the CSR tensor needs both index arrays alike.
        col = col.to(crow.dtype)
    else:
        row = torch.repeat_interleave(torch.arange(size, device=col.device, dtype=col.dtype), crow.diff())
        order = torch.argsort(col, stable=True)
        crow = torch.zeros_like(crow)
        crow[1:] = torch.cumsum(torch.bincount(col, minlength=size), 0)
        col, value = row.index_select(0, order), value.index_select(0, order)
    return torch.sparse_csr_tensor(crow, col, value, (size, size), check_invariants=False)


def _interference(batch: LinkBatch, q: Tensor) -> Tensor:
    """:math:`\\sum_{j \\ne k} \\mathrm{inr}_{kj} q_j` per receiver ``k``: :math:`A q`."""
    return batch.matrix @ q.to(batch.snr.dtype)


def _harm(batch: LinkBatch, cost: Tensor) -> Tensor:
    """:math:`\\sum_{j \\ne k} \\mathrm{inr}_{jk} c_j` per transmitter ``k``: :math:`A^\\top c`."""
    return batch.matrix_t @ cost


def _per_link(value: Tensor, like: Tensor) -> Tensor:
    """A per-link vector ``(N,)`` shaped to broadcast against ``like``: ``(N,)`` or ``(N, C)``
    (``C`` candidate power vectors iterated at once)."""
    return value if like.dim() == 1 else value.unsqueeze(-1)


def link_rates(batch: LinkBatch, q: Tensor) -> Tensor:
    """Rates :math:`\\log_2(1 + \\mathrm{sinr}_k)` in bits/s/Hz at power shares ``q``, ``(N,)``
    or ``(N, C)`` for ``C`` candidates."""
    return torch.log1p(_per_link(batch.snr, q) * q / (1.0 + _interference(batch, q))) / _LN2


def link_utility(batch: LinkBatch, rates: Tensor) -> Tensor:
    """Per-link utility: :math:`w_k r_k` (weighted rate) or :math:`w_k f(r_k; r^{min}_k)`
    (α-fair, :func:`gnnalloc.core.resource_utility`), by ``batch.fair``."""
    col = lambda v: _per_link(v, rates)  # noqa: E731
    if not batch.any_fair:
        return col(batch.weight) * rates
    fair = resource_utility(rates, col(batch.rate_min), col(batch.penalty), col(batch.alpha))
    return col(batch.weight) * torch.where(col(batch.fair), fair, rates)


def utility_slope(batch: LinkBatch, rates: Tensor) -> Tensor:
    r""":math:`\partial U_k / \partial r_k`: :math:`w_k` for the weighted rate; for the α-fair
    utility :math:`w_k (r/m)^{-\alpha} / m` above the minimum :math:`m`, :math:`w_k k / m` below."""
    col = lambda v: _per_link(v, rates)  # noqa: E731
    if not batch.any_fair:
        return col(batch.weight).expand_as(rates)
    rate_min = col(batch.rate_min)
    ratio = rates / rate_min
    above = torch.clamp(ratio, min=1.0).pow(-col(batch.alpha)) / rate_min
    slope = torch.where(ratio >= 1.0, above, col(batch.penalty) / rate_min)
    return col(batch.weight) * torch.where(col(batch.fair), slope, torch.ones_like(slope))


def wmmse_step(
    batch: LinkBatch, q: Tensor, weight: Tensor | None = None, with_utility: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """One WMMSE update of the power shares ``q`` ``(N,)`` (module docstring), differentiable.

    Args:
        batch: the links.
        q: power shares in ``[0, 1]``, ``(N,)`` or ``(N, C)`` for ``C`` candidates.
        weight: the weights :math:`a_k`; default :func:`utility_slope` at the rates of ``q``.
        with_utility: also return :func:`link_utility` at ``q`` (its rates need the same
            interference sum the step computes, so this saves a second sparse product).

    Returns:
        The updated shares, and with ``with_utility`` the per-link utility at ``q``.
    """
    snr = _per_link(batch.snr, q)
    interference = 1.0 + _interference(batch, q)
    rates = torch.log1p(snr * q / interference) / _LN2 if weight is None or with_utility else None
    if weight is None:
        weight = utility_slope(batch, rates)
    h = snr.sqrt()
    v = q.clamp(min=0.0).sqrt()
    received = interference + snr * q
    u = h * v / received
    w = received / interference  # 1 / (1 - u h v) = 1 + sinr
    cost = weight * w * u * u
    # sum_j a_j w_j u_j^2 |h_jk|^2 over the receivers j that transmitter k reaches, own included.
    spread = cost * snr + _harm(batch, cost)
    v_new = weight * w * u * h / spread.clamp(min=torch.finfo(spread.dtype).tiny)
    q_new = v_new.clamp(0.0, 1.0).square()
    return (q_new, link_utility(batch, rates)) if with_utility else q_new


def graph_utility(batch: LinkBatch, q: Tensor) -> Tensor:
    """Total utility per instance at power shares ``q``: ``(num_graphs,)``, or
    ``(num_graphs, C)`` for ``C`` candidate columns."""
    per_link = link_utility(batch, link_rates(batch, q))
    return per_link.new_zeros((batch.num_graphs,) + per_link.shape[1:]).index_add(0, batch.batch, per_link)


def fp_step(batch: LinkBatch, q: Tensor, weight: Tensor | None = None) -> Tensor:
    r"""One fractional-programming update of the power shares ``q`` (Shen & Yu, "Fractional
    programming for communication systems", 2018; FPLinQ's power step): with
    :math:`\gamma_k = \mathrm{sinr}_k` and weights :math:`a_k`,

    .. math::

        y_k = \frac{\sqrt{a_k (1 + \gamma_k)\, \mathrm{snr}_k q_k}}{1 + \mathrm{snr}_k q_k
              + \sum_{j \ne k} \mathrm{inr}_{kj} q_j}, \qquad
        q_k \leftarrow \min\Big(1, \frac{a_k (1 + \gamma_k)\, y_k^2\, \mathrm{snr}_k}
              {\big(y_k^2\, \mathrm{snr}_k + \sum_{j \ne k} y_j^2\, \mathrm{inr}_{jk}\big)^2}\Big),

    the closed-form maximisers of the Lagrangian-dual and quadratic transforms in turn
    (nondecreasing weighted sum rate). Arguments as :func:`wmmse_step`.
    """
    snr = _per_link(batch.snr, q)
    interference = 1.0 + _interference(batch, q)
    sinr = snr * q / interference
    if weight is None:
        weight = utility_slope(batch, torch.log1p(sinr) / _LN2)
    a = weight * (1.0 + sinr)
    y = (a * snr * q).clamp(min=0.0).sqrt() / (interference + snr * q)
    spread = y * y * snr + _harm(batch, y * y)
    return (a * y * y * snr / (spread * spread).clamp(min=torch.finfo(spread.dtype).tiny)).clamp(0.0, 1.0)


def _lengths(halvings: int, like: Tensor) -> Tensor:
    """The step lengths :func:`line_search` tries after the full step, :math:`2^{-1}, 2^{-2}, \\dots`."""
    return torch.pow(2.0, -torch.arange(1, halvings + 1, dtype=like.dtype, device=like.device))


def line_search(
    batch: LinkBatch, q: Tensor, step: Tensor, value: Tensor, halvings: int = 8, chunk: int = 8,
    return_value: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""The monotone re-weighted step: per instance and candidate column, the full step ``step``
    if it improves on ``value`` (the utility at ``q``); else the best improving
    :math:`q + t\,(\text{step} - q)` among the first chunk of ``chunk`` lengths of
    :math:`t = 2^{-1}, \dots, 2^{-\text{halvings}}` that has one; else ``q``.

    Why: for an α-fair utility the re-weighted step (:func:`wmmse_step` or :func:`fp_step` with
    weights :math:`U_k'(r_k)`) maximises a concave minoriser of the linearised utility, so it is
    an ascent direction, but its full length can overshoot (the slope jumps by ``penalty`` at the
    minimum rate); the search keeps the iteration monotone, and a fixed point is stationary.

    Args:
        batch: the links; q, step: shares ``(N,)`` or ``(N, C)``; value: :func:`graph_utility`
            at ``q``, ``(num_graphs,)`` or ``(num_graphs, C)``.
        return_value: also return :func:`graph_utility` at the result (the search has it: an
            iteration need not evaluate it again).
    """
    per_link = lambda mask: mask.index_select(0, batch.batch)  # noqa: E731
    full_value = graph_utility(batch, step)
    todo = ~(full_value > value)
    out, out_value = torch.where(per_link(todo), q, step), torch.where(todo, value, full_value)
    for lengths in _lengths(halvings, q).split(chunk):
        if not bool(todo.any()):
            break
        trial = q.unsqueeze(-1) + (step - q).unsqueeze(-1) * lengths  # (N, [C,] T)
        utility = graph_utility(batch, trial.reshape(q.shape[0], -1)).view(value.shape + lengths.shape)
        top, index = utility.max(dim=-1)
        improved = todo & (top > value)
        pick = trial.gather(-1, per_link(index).unsqueeze(-1)).squeeze(-1)
        out = torch.where(per_link(improved), pick, out)
        out_value = torch.where(improved, top, out_value)
        todo = todo & ~improved
    return (out, out_value) if return_value else out


def lift_to_floor(
    batch: LinkBatch, q: Tensor, rate: float, max_off: float = 0.05, iterations: int = 200, tol: float = 1e-12,
) -> Tensor:
    r"""The least power increase that gives every link at least ``rate`` bits/s/Hz where that is
    possible, except a few hopeless links: power shares ``(N,)``, each :math:`\ge q_k`.

    With the target :math:`\gamma = 2^{\text{rate}} - 1`, a link reaches the rate exactly when
    :math:`q_k \ge \gamma\,(1 + \sum_{j \ne k} \mathrm{inr}_{kj} q_j) / \mathrm{snr}_k`, a standard
    interference function (Yates, 1995): iterating

    .. math::

        q_k \leftarrow \max\Big(q_k,\ \min\big(1,\ \gamma\,(1 + \textstyle\sum_{j \ne k}
        \mathrm{inr}_{kj} q_j) / \mathrm{snr}_k\big)\Big)

    raises powers monotonically to the least fixed point above ``q`` (links already above the
    rate are raised only as far as the added interference requires). Per instance of ``K``
    links, the :math:`\lfloor \text{max\_off}\,(K - 1) \rfloor` links below the rate that
    need the most power at ``q`` keep their power instead (their interference would cost the
    others most; with ``max_off = 0.05`` that leaves the 5th-percentile rate at the floor).
    Links whose floor needs more than full power end at full power, below the floor.

    Args:
        batch: the links; q: power shares in ``[0, 1]``, ``(N,)``.
        rate: the floor, bits/s/Hz, > 0.
        max_off: share of each instance's links that may stay below the floor, in ``[0, 1)``.
        iterations, tol: at most this many updates, stopping once no share moves by more than ``tol``.
    """
    if not rate > 0 or not math.isfinite(rate):
        raise InputError(f"rate: must be a positive number of bits/s/Hz, got {rate!r}")
    if not 0.0 <= max_off < 1.0:
        raise InputError(f"max_off: must be in [0, 1), got {max_off!r}")
    target = 2.0 ** rate - 1.0
    snr = batch.snr.clamp(min=torch.finfo(batch.snr.dtype).tiny)
    q = q.to(batch.snr.dtype)
    need = target * (1.0 + _interference(batch, q)) / snr
    below = q < need  # the rate is below the floor exactly when the share is below its need
    # Per instance, the below-floor links that need the most power, largest first.
    sizes = torch.bincount(batch.batch, minlength=batch.num_graphs)
    rank = segment_rank(batch.batch, batch.num_graphs, torch.where(below, need, -math.inf), descending=True)
    allowance = torch.floor(max_off * (sizes - 1).clamp(min=0).to(q.dtype)).long()
    lifted = ~(below & (rank < allowance[batch.batch]))
    for _ in range(iterations):
        need = target * (1.0 + _interference(batch, q)) / snr
        q_new = torch.where(lifted, torch.maximum(q, need.clamp(max=1.0)), q)
        moved = float((q_new - q).abs().max()) if q.numel() else 0.0
        q = q_new
        if moved <= tol:
            break
    return q
