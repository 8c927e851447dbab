r"""One loss per user, from the library's utility (the same code as the metrics and solvers).

.. math::  L_u = -\,U_u = -\,w_u\big(f(X_u; m^c_u) + f(y_u; m^b_u)\big)

with :math:`f` from :mod:`gnnalloc.core`: :math:`-\ln(r/m)` above a minimum, so the
loss flattens out (slope :math:`-1/r`) as a user gets more, and :math:`-k(r-m)/m` below it, a
slope :math:`k \ge 1` times steeper than at the minimum (``penalty``, 10 by default). A user below
its minimum therefore dominates both the plain gradient and the min-norm combination. Summed
over users, the losses are minus the optimisation objective the exact solver maximises, so a
training step and the reported gap measure the same thing.
"""

from __future__ import annotations

from torch import Tensor

from gnnalloc.families.edge.problem import ProblemTensors

__all__ = ["per_user_loss"]


def per_user_loss(problem: ProblemTensors, compute: Tensor, bandwidth: Tensor) -> Tensor:
    """Losses :math:`L_u = -U_u`, ``(U,)``, for per-pair ``compute`` and per-user ``bandwidth``."""
    return -problem.user_utility(compute, bandwidth)
