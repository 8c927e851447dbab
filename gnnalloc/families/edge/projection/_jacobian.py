r"""The projection's Jacobian at a solution, applied to many cotangents at once.

Fairness backpropagation in ``output`` mode needs :math:`M e_i` for every user :math:`i`, with
:math:`M` the Jacobian of the Euclidean projection onto the feasible polyhedron. At a projected
point with free coordinates :math:`F = \{v > 0\}` and tight rows :math:`R` (load at capacity)
the projection is locally the orthogonal projector

.. math::  M = P_F\big(I - A_{RF}^\top (A_{RF} A_{RF}^\top)^{+} A_{RF}\big) P_F,

for compute (server rows with unit weights, link rows with the pairs' data rates) and the same
with unit weights per home server for bandwidth. :math:`M` depends only on the projected point,
so it is read off the outputs of any exact projection; :math:`A_{RF}A_{RF}^\top` has one row per
tight constraint (a few hundred per instance) and is pseudo-inverted densely once, after which
:math:`K` cotangents cost two sparse products and one dense one.

A tight row with a zero multiplier (degenerate point) is treated as active; such points have
measure zero for continuous raw decisions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnnalloc.families.edge.problem import ProblemTensors

__all__ = ["ProjectionJacobian"]

_TIGHT = 1e-7  # relative slack under which a row counts as tight (projection tol is 1e-9)


def _apply_projector(values: Tensor, matrix: Tensor, pinv: Tensor, free: Tensor) -> Tensor:
    masked = values * free
    coefficients = torch.sparse.mm(matrix, masked.T).T @ pinv  # (K, R)
    return masked - torch.sparse.mm(matrix.transpose(0, 1), coefficients.T).T * free


class ProjectionJacobian:
    """:math:`M` at a projected point, as a batched vector-Jacobian product (a ``Pullback``).

    Args:
        problem: the instance(s) the point belongs to.
        compute: projected compute ``(P,)``.
        bandwidth: projected bandwidth ``(U,)``.
    """

    def __init__(self, problem: ProblemTensors, compute: Tensor, bandwidth: Tensor) -> None:
        compute = compute.detach().to(torch.float64)
        bandwidth = bandwidth.detach().to(torch.float64)
        p = problem.to(dtype=torch.float64)
        self.dtype = problem.dtype
        pairs = torch.arange(p.num_pairs, device=p.device)
        migrated = (p.pair_link >= 0) & (p.pair_link_weight > 0)

        def tight(load: Tensor, capacity: Tensor) -> Tensor:
            return load >= capacity * (1 - _TIGHT) - 1e-300

        server_tight = tight(p.server_compute_load(compute), p.server_compute)
        link_tight = tight(p.link_load(compute), p.link_capacity)
        self.compute_free = (compute > 0).to(torch.float64)
        rows = torch.cat([p.pair_server, p.num_servers + p.pair_link[migrated]])
        cols = torch.cat([pairs, pairs[migrated]])
        vals = torch.cat([torch.ones(p.num_pairs, dtype=torch.float64, device=p.device),
                          p.pair_link_weight[migrated]])
        keep = torch.cat([server_tight, link_tight])[rows]
        self.compute_matrix, self.compute_pinv = self._system(
            rows[keep], cols[keep], vals[keep], p.num_servers + p.num_links, p.num_pairs,
            self.compute_free,
        )

        self.bandwidth_free = (bandwidth > 0).to(torch.float64)
        bw_tight = tight(p.server_bandwidth_load(bandwidth), p.server_bandwidth)
        users = torch.arange(p.num_users, device=p.device)
        keep_u = bw_tight[p.user_server]
        self.bandwidth_matrix, self.bandwidth_pinv = self._system(
            p.user_server[keep_u], users[keep_u],
            torch.ones(int(keep_u.sum()), dtype=torch.float64, device=p.device),
            p.num_servers, p.num_users, self.bandwidth_free,
        )

    @staticmethod
    def _system(rows: Tensor, cols: Tensor, vals: Tensor, num_rows: int, num_cols: int, free: Tensor):
        """Compact the tight rows, build ``A_RF`` (sparse) and ``(A_RF A_RF^T)^+`` (dense)."""
        vals = vals * free[cols]
        used, compact = torch.unique(rows, return_inverse=True)
        size = (int(used.numel()), num_cols)
        matrix = torch.sparse_coo_tensor(
            torch.stack([compact, cols]), vals, size, check_invariants=False
        ).coalesce()
        if size[0] == 0:
            return matrix, torch.zeros(0, 0, dtype=torch.float64, device=free.device)
        dense_rows = matrix.to_dense() if size[0] * num_cols <= 5e7 else None
        if dense_rows is not None:
            gram = dense_rows @ dense_rows.T
        else:
            gram = torch.sparse.mm(matrix, matrix.transpose(0, 1)).to_dense()
        return matrix, torch.linalg.pinv(gram, hermitian=True)

    def __call__(self, cot_compute: Tensor, cot_bandwidth: Tensor) -> tuple[Tensor, Tensor]:
        """``(M_x c_x, M_y c_y)`` for cotangents ``(K, P)`` and ``(K, U)``."""
        out_x = _apply_projector(
            cot_compute.to(torch.float64), self.compute_matrix, self.compute_pinv, self.compute_free
        )
        out_y = _apply_projector(
            cot_bandwidth.to(torch.float64), self.bandwidth_matrix, self.bandwidth_pinv,
            self.bandwidth_free,
        )
        return out_x.to(cot_compute.dtype), out_y.to(cot_bandwidth.dtype)
