"""Fairness backpropagation: per-decision-maker losses combined by the min-norm (MGDA) QP."""

from gnnalloc.fairness._backprop import (
    FairBackward,
    FairStepStats,
    GramMode,
    Pullback,
    loss_decrease_share,
)
from gnnalloc.fairness._min_norm import MinNormResult, min_norm_weights, simplex_projection

__all__ = [
    "FairBackward", "FairStepStats", "GramMode", "MinNormResult", "Pullback",
    "loss_decrease_share", "min_norm_weights", "simplex_projection",
]
