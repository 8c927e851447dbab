r"""The projection interface shared by the fast (torch) and reference (cvxpylayers) projections.

Both map raw network outputs to the closest feasible allocation,

.. math::  (x, y) = \arg\min \|x - \hat x\|^2 + \|y - \hat y\|^2 \quad \text{s.t.}\quad
    x \ge 0,\ y \ge 0,\ \sum_{p \in s} x_p \le C_s,\ \sum_{u \in s} y_u \le B_s,\
    \sum_{p \in l} a_p x_p \le L_l,

with pairs :math:`p` grouped by candidate server :math:`s`, users grouped by home server and
migrated pairs grouped by link :math:`l` with weight :math:`a_p` (``pair_link_weight``).
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from gnnalloc.core import InputError
from gnnalloc.families.edge.problem import ProblemTensors

__all__ = ["Projection", "check_inputs"]


class Projection(torch.nn.Module, metaclass=abc.ABCMeta):
    """Differentiable Euclidean projection onto the feasible set of a :class:`ProblemTensors`.

    Subclasses implement :meth:`forward`. Inputs may be one raw decision ``(P,)``/``(U,)`` or a
    batch of raw decisions ``(B, P)``/``(B, U)`` for the same problem; outputs have the inputs'
    shape, dtype and device and are differentiable with respect to the raw decisions (the
    problem data are constants).
    """

    @abc.abstractmethod
    def forward(
        self, raw_compute: Tensor, raw_bandwidth: Tensor, problem: ProblemTensors
    ) -> tuple[Tensor, Tensor]:
        """``(x, y) = argmin ||x - raw_compute||^2 + ||y - raw_bandwidth||^2`` over the feasible set.

        Args:
            raw_compute: raw per-pair compute, ``(P,)`` or ``(B, P)``.
            raw_bandwidth: raw per-user bandwidth, ``(U,)`` or ``(B, U)``.
            problem: the constraint structure (one instance or a collated batch).

        Returns:
            ``(x, y)`` shaped like the inputs.

        Raises:
            ValueError: on shape mismatch or non-finite raw decisions, naming the argument.
        """


def check_inputs(
    raw_compute: Tensor, raw_bandwidth: Tensor, problem: ProblemTensors
) -> tuple[int, ...]:
    """Validate raw decisions against ``problem`` and return their batch shape (``()`` or ``(B,)``).

    Raises:
        ValueError: naming ``raw_compute`` or ``raw_bandwidth`` for a wrong type, shape, dtype or
            a NaN/infinite entry.
    """
    for name, value, size, what in (
        ("raw_compute", raw_compute, problem.num_pairs, "P = problem.num_pairs"),
        ("raw_bandwidth", raw_bandwidth, problem.num_users, "U = problem.num_users"),
    ):
        if not isinstance(value, Tensor):
            raise InputError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise InputError(f"{name}: expected a floating-point tensor, got {value.dtype}")
        if value.dim() not in (1, 2) or value.shape[-1] != size:
            raise InputError(
                f"{name}: expected shape ({size},) or (B, {size}) with {what}, "
                f"got {tuple(value.shape)}"
            )
        if value.numel() and not bool(torch.isfinite(value).all()):
            kind = "NaN" if bool(torch.isnan(value).any()) else "infinite"
            raise InputError(f"{name}: contains {kind} entries")
    if raw_compute.shape[:-1] != raw_bandwidth.shape[:-1]:
        raise InputError(
            f"raw_bandwidth: batch shape {tuple(raw_bandwidth.shape[:-1])} differs from "
            f"raw_compute's {tuple(raw_compute.shape[:-1])}"
        )
    if raw_compute.device != raw_bandwidth.device:
        raise InputError(
            f"raw_bandwidth: on {raw_bandwidth.device}, raw_compute on {raw_compute.device}"
        )
    return tuple(raw_compute.shape[:-1])
