"""Fairness backpropagation: objectives of per-unit utilities (per user or link, per instance,
per group, efficiency-fairness pairs) combined by an aggregator (sum, certified min-norm MGDA,
UPGrad, α-fair) from their gradients' Gram matrix or by their values (softmin over regrets); and the edge family's per-user MGDA step."""

from gnnalloc.fairness._aggregate import AGGREGATORS, Aggregator, aggregate
from gnnalloc.fairness._backprop import (
    FairBackward,
    FairStepStats,
    GramMode,
    Pullback,
    loss_decrease_share,
)
from gnnalloc.fairness._min_norm import MinNormResult, min_norm_weights, simplex_projection
from gnnalloc.fairness._multi import (
    OBJECTIVES,
    VALUE_AGGREGATORS,
    FairnessLoss,
    ObjectiveKind,
    objective_jacobian,
)
from gnnalloc.fairness._objectives import (
    FAIRNESS_TERMS,
    bottom_mean,
    efficiency_fairness,
    group_objectives,
    log_mean,
    unit_objectives,
)

__all__ = [
    "AGGREGATORS", "FAIRNESS_TERMS", "Aggregator", "FairBackward", "FairStepStats", "FairnessLoss", "GramMode",
    "MinNormResult", "OBJECTIVES", "ObjectiveKind", "Pullback", "aggregate", "bottom_mean",
    "efficiency_fairness", "group_objectives", "log_mean", "loss_decrease_share", "min_norm_weights",
    "objective_jacobian", "simplex_projection", "unit_objectives", "VALUE_AGGREGATORS",
]
