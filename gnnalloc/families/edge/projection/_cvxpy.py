r"""Reference projection: the projection QP as a cvxpylayers ``CvxpyLayer`` solved by Clarabel.

The layer minimises :math:`\|x - \hat x\|^2 + \|y - \hat y\|^2` over the instance's constraints,
with the raw decisions as cvxpy ``Parameter``\ s and the constraint data as constants; gradients
come from diffcp's implicit differentiation of the conic program. It is slow (canonicalisation
takes seconds and every call solves an interior-point problem) and is meant for testing
:class:`~gnnalloc.families.edge.projection.FastProjection` and for small problems.

Modelling choices, all of which leave the solution unchanged:

* pairs on a zero-capacity server (or a zero-capacity link they load) and users of a
  zero-bandwidth server are fixed at 0 beforehand: the constraints force it, and leaving them in
  would give Clarabel a feasible set with an empty interior;
* constraint rows are divided by their capacity (as in :func:`gnnalloc.families.edge.solvers.solve_exact`);
* diffcp hands Clarabel a pure conic program, in which each square :math:`d^2 \le t` becomes a
  second-order cone :math:`\|(2d, t - 1)\| \le t + 1` that is badly conditioned for
  :math:`|d| \gg 1`; the objective is therefore written as :math:`\sum ((x - \hat x)/c)^2` with
  :math:`c` the mean capacity (compute and bandwidth separately, as the two parts are independent).

**Polishing.** Even so an interior-point solution is only accurate to about
:math:`\sqrt{\text{tol}}\cdot\|\hat x - x\|`. With ``polish=True`` (default) the forward value is
refined as OSQP does: the active set is read off the interior-point primal and dual solution
(pair free iff :math:`x_p > \eta_p`, row active iff :math:`\nu_r > \text{slack}_r`), the
equality-constrained projection :math:`\min \|x_F - \hat x_F\|^2` s.t. :math:`A_{RF} x_F = b_R`
is solved by dense least squares (scipy), and the result replaces the interior-point value only if
it passes the full KKT test (primal and dual feasibility, sign conditions on every zero pair). The
gradient is always diffcp's (the polished value has the same Jacobian when the active set is
right).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

try:  # the optional [exact] extra; CvxpyProjection says how to install it
    import cvxpy as cp
except ImportError:  # pragma: no cover - exercised only without the extra
    cp = None
import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from gnnalloc.core import InputError
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.projection._base import Projection, check_inputs

__all__ = ["CvxpyProjection"]

Mode = Literal["auto", "dense", "lsqr", "lsmr"]
# Relative tolerance of the polish KKT test.
_POLISH_TOL = 1e-9


@dataclass
class _Part:
    """One independent part of the projection (compute over pairs, bandwidth over users)."""

    live: np.ndarray  # indices into the full raw vector of the variables in the program
    matrix: sp.csr_matrix | None  # capacity-normalised constraint rows (right-hand side 1)
    scale: float = 1.0  # c in the objective sum(((v - raw) / c)^2)


@dataclass
class _Layer:
    """A built layer; its outputs are ``(value, dual of v >= 0, dual of rows)`` per part."""

    layer: Any  # cvxpylayers.torch.CvxpyLayer, or None when no variable is free
    compute: _Part
    bandwidth: _Part
    size: int  # rows + columns of the conic program (diffcp's dense system is size x size)


def _numpy(t: Tensor, dtype: Any) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype, copy=False)


def _structure_key(problem: ProblemTensors) -> str:
    digest = hashlib.sha256()
    for t, dtype in (
        (problem.pair_server, np.int64), (problem.pair_link, np.int64),
        (problem.pair_link_weight, np.float64), (problem.user_server, np.int64),
        (problem.server_compute, np.float64), (problem.server_bandwidth, np.float64),
        (problem.link_capacity, np.float64),
    ):
        a = np.ascontiguousarray(_numpy(t, dtype))
        digest.update(str(a.shape).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _incidence(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, capacity: np.ndarray, n: int
) -> sp.csr_matrix | None:
    """``diag(1/capacity) @ M`` restricted to non-empty rows with capacity > 0, or ``None``."""
    if rows.size == 0:
        return None
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(capacity.shape[0], n))
    keep = np.flatnonzero((capacity > 0) & (matrix.getnnz(axis=1) > 0))
    if keep.size == 0:
        return None
    return sp.csr_matrix(sp.diags(1.0 / capacity[keep]) @ matrix[keep])


def _stack(*blocks: sp.csr_matrix | None) -> sp.csr_matrix | None:
    present = [b for b in blocks if b is not None]
    return sp.csr_matrix(sp.vstack(present)) if present else None


def _mean_positive(values: np.ndarray) -> float:
    positive = values[values > 0]
    return float(positive.mean()) if positive.size else 1.0


def _build(problem: ProblemTensors) -> _Layer:
    from cvxpylayers.torch import CvxpyLayer

    pair_server = _numpy(problem.pair_server, np.int64)
    pair_link = _numpy(problem.pair_link, np.int64)
    link_weight = _numpy(problem.pair_link_weight, np.float64)
    user_server = _numpy(problem.user_server, np.int64)
    compute = _numpy(problem.server_compute, np.float64)
    bandwidth = _numpy(problem.server_bandwidth, np.float64)
    link_cap = _numpy(problem.link_capacity, np.float64)

    weighted = (pair_link >= 0) & (link_weight > 0)
    link_ok = np.ones(pair_server.shape, dtype=bool)
    link_ok[weighted] = link_cap[pair_link[weighted]] > 0
    live_pairs = np.flatnonzero((compute[pair_server] > 0) & link_ok)
    live_users = np.flatnonzero(bandwidth[user_server] > 0)

    n, m = live_pairs.size, live_users.size
    cols = np.arange(n)
    on_link = weighted[live_pairs]
    compute_rows = _stack(
        _incidence(pair_server[live_pairs], cols, np.ones(n), compute, n),
        _incidence(
            pair_link[live_pairs][on_link], cols[on_link], link_weight[live_pairs][on_link],
            link_cap, n,
        ),
    )
    bandwidth_rows = _incidence(user_server[live_users], np.arange(m), np.ones(m), bandwidth, m)
    parts = (
        _Part(live_pairs, compute_rows, _mean_positive(compute)),
        _Part(live_users, bandwidth_rows, _mean_positive(bandwidth)),
    )

    parameters, variables, constraints, objective = [], [], [], 0
    for part, name in ((parts[0], "compute"), (parts[1], "bandwidth")):
        k = part.live.size
        if k == 0:
            continue
        v = cp.Variable(k, name=name)
        raw = cp.Parameter(k, name=f"raw_{name}")
        sign = v >= 0
        constraints.append(sign)
        outputs = [v, sign.dual_variables[0]]
        if part.matrix is not None:
            rows = part.matrix @ v <= 1.0
            constraints.append(rows)
            outputs.append(rows.dual_variables[0])
        objective = objective + cp.sum(cp.square((v - raw) / part.scale))
        parameters.append(raw)
        variables.extend(outputs)
    if not parameters:
        return _Layer(None, *parts, 0)
    program = cp.Problem(cp.Minimize(objective), constraints)
    layer = CvxpyLayer(program, parameters=parameters, variables=variables)
    # diffcp's derivative system has one row per cone row and per variable (+1).
    rows, columns = layer.ctx.solver_ctx.A_shape
    return _Layer(layer, *parts, int(rows + columns))


def _polish(
    raw: np.ndarray, value: np.ndarray, sign_dual: np.ndarray, row_dual: np.ndarray | None,
    matrix: sp.csr_matrix | None, objective_scale: float,
) -> np.ndarray | None:
    """Exact projection on the active set read off an interior-point solution, or ``None``.

    Returns ``None`` unless the candidate passes the KKT test of the projection onto
    ``{v >= 0, matrix v <= 1}``.
    """
    # Duals of sum(((v - raw)/c)^2) are 2/c^2 times those of the plain projection; undo that so
    # primal and dual values are compared in the same units (those of v).
    unscale = objective_scale**2 / 2.0
    free = value > sign_dual * unscale
    scale = max(1.0, float(np.abs(raw).max(initial=0.0)))
    candidate = np.zeros_like(raw)
    nu = np.zeros(0)
    active_rows = np.zeros(0, dtype=np.int64)
    if matrix is not None:
        slack = 1.0 - matrix @ value
        has_free = np.zeros(matrix.shape[0], dtype=bool)
        if free.any():
            has_free = matrix[:, free].getnnz(axis=1) > 0
        # A multiplier nu moves each pair of its row by nu * M_rp, a slack s leaves room for
        # s / M_rp: compare both in units of v.
        coefficient = np.asarray(abs(matrix).max(axis=1).todense()).ravel()
        holds = row_dual * unscale * coefficient > slack / coefficient
        active_rows = np.flatnonzero(holds & has_free)
    if active_rows.size:
        a = matrix[active_rows][:, free].toarray()
        gram = a @ a.T
        rhs = a @ raw[free] - 1.0
        nu = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        candidate[free] = raw[free] - a.T @ nu
    else:
        candidate[free] = raw[free]
    # KKT of the projection: v >= 0, M v <= 1, nu >= 0, and on zero pairs raw - M_R^T nu <= 0.
    tol = _POLISH_TOL * scale
    if candidate.min(initial=0.0) < -tol:
        return None
    if nu.size and nu.min() < -_POLISH_TOL * (1.0 + np.abs(nu).max()):
        return None
    if matrix is not None and (matrix @ candidate).max(initial=0.0) > 1.0 + _POLISH_TOL:
        return None
    pushed = raw.copy()
    if active_rows.size:
        pushed -= matrix[active_rows].T @ nu
    if (pushed[~free] > tol).any():
        return None
    return np.maximum(candidate, 0.0)


class CvxpyProjection(Projection):
    """The exact projection through cvxpylayers (diffcp + Clarabel); the reference for tests.

    Runs on CPU in float64 whatever the inputs' device and dtype (outputs are converted back).

    Args:
        tolerance: Clarabel's gap and feasibility tolerances.
        mode: diffcp's differentiation mode. ``"dense"`` factorises the full derivative system
            (accurate; memory and time grow with the square and cube of the program size);
            ``"lsqr"``/``"lsmr"`` are iterative. ``"auto"`` uses dense up to ``dense_limit``.
        dense_limit: program size (rows + columns) up to which ``"auto"`` picks dense mode.
        polish: refine the forward value on the identified active set (module docstring).
        max_iter: Clarabel's iteration cap.
        cache_size: number of built layers kept, keyed on a hash of the constraint data (a
            layer is bound to one structure and takes seconds to build).
    """

    def __init__(
        self,
        tolerance: float = 1e-10,
        mode: Mode = "auto",
        dense_limit: int = 4000,
        polish: bool = True,
        max_iter: int = 200,
        cache_size: int = 4,
    ) -> None:
        super().__init__()
        if cp is None:
            raise ImportError(
                "CvxpyProjection needs cvxpy and cvxpylayers: pip install 'gnnalloc[exact]'"
            )
        if mode not in ("auto", "dense", "lsqr", "lsmr"):
            raise InputError(f"mode: unknown {mode!r}, expected 'auto', 'dense', 'lsqr' or 'lsmr'")
        if not tolerance > 0:
            raise InputError(f"tolerance: must be > 0, got {tolerance!r}")
        self.tolerance = float(tolerance)
        self.mode = mode
        self.dense_limit = int(dense_limit)
        self.polish = bool(polish)
        self.max_iter = int(max_iter)
        self.cache_size = int(cache_size)
        self.last_polished: int = 0  # batch elements x parts polished in the last forward
        self.last_unpolished: int = 0  # ... whose polish failed the KKT test (IPM value kept)
        self._cache: OrderedDict[str, _Layer] = OrderedDict()

    def extra_repr(self) -> str:
        return f"tolerance={self.tolerance:g}, mode={self.mode!r}, polish={self.polish}"

    def _layer(self, problem: ProblemTensors) -> _Layer:
        key = _structure_key(problem)
        entry = self._cache.get(key)
        if entry is None:
            entry = _build(problem)
            self._cache[key] = entry
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return entry

    def solver_args(self, size: int, needs_grad: bool = True) -> dict[str, Any]:
        """Keyword arguments handed to diffcp (``solve_method``, ``mode``) and on to Clarabel.

        Args:
            size: the program's rows + columns (for ``mode="auto"``).
            needs_grad: whether cvxpylayers will compute derivatives.
        """
        args: dict[str, Any] = {"solve_method": "Clarabel"}
        if needs_grad:
            # diffcp's solve-only path passes unknown keys on to Clarabel's settings, so `mode`
            # goes in only when cvxpylayers calls solve_and_derivative.
            mode = self.mode
            if mode == "auto":
                mode = "dense" if size <= self.dense_limit else "lsqr"
            args["mode"] = mode
        args.update(
            tol_gap_abs=self.tolerance, tol_gap_rel=self.tolerance, tol_feas=self.tolerance,
            tol_ktratio=min(1e-6, self.tolerance), max_iter=self.max_iter,
        )
        return args

    def forward(
        self, raw_compute: Tensor, raw_bandwidth: Tensor, problem: ProblemTensors
    ) -> tuple[Tensor, Tensor]:
        """Project with cvxpylayers; see :meth:`Projection.forward`."""
        check_inputs(raw_compute, raw_bandwidth, problem)
        entry = self._layer(problem)
        self.last_polished = self.last_unpolished = 0
        raws = (raw_compute.to("cpu", torch.float64), raw_bandwidth.to("cpu", torch.float64))
        results = [torch.zeros_like(r) for r in raws]
        if entry.layer is not None:
            both = (entry.compute, entry.bandwidth)
            parts = [(i, part) for i, part in enumerate(both) if part.live.size]
            params = [raws[i].index_select(-1, torch.as_tensor(part.live)) for i, part in parts]
            needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in params)
            args = self.solver_args(entry.size, needs_grad)
            outputs = list(entry.layer(*params, solver_args=args))
            for (i, part), param in zip(parts, params):
                value, sign_dual = outputs.pop(0), outputs.pop(0)
                row_dual = outputs.pop(0) if part.matrix is not None else None
                if self.polish:
                    value = self._polished(value, param, sign_dual, row_dual, part)
                results[i] = results[i].index_copy(-1, torch.as_tensor(part.live), value)
        return (
            results[0].to(device=raw_compute.device, dtype=raw_compute.dtype),
            results[1].to(device=raw_bandwidth.device, dtype=raw_bandwidth.dtype),
        )

    def _polished(
        self, value: Tensor, raw: Tensor, sign_dual: Tensor, row_dual: Tensor | None, part: _Part
    ) -> Tensor:
        """``value`` with each batch element's data replaced by its polish (gradient kept)."""
        flat_value = value.detach().reshape(-1, value.shape[-1]).numpy()
        flat_raw = raw.detach().reshape(-1, raw.shape[-1]).numpy()
        flat_sign = sign_dual.detach().reshape(-1, value.shape[-1]).numpy()
        flat_rows = None
        if row_dual is not None:
            flat_rows = row_dual.detach().reshape(flat_value.shape[0], -1).numpy()
        refined = flat_value.copy()
        for b in range(flat_value.shape[0]):
            rows = None if flat_rows is None else flat_rows[b]
            polished = _polish(
                flat_raw[b], flat_value[b], flat_sign[b], rows, part.matrix, part.scale
            )
            self.last_polished += 1
            if polished is None:
                self.last_unpolished += 1
            else:
                refined[b] = polished
        correction = torch.from_numpy(refined.reshape(value.shape)) - value.detach()
        return value + correction
