"""Training and evaluation of the edge family's allocator: per-user losses, Lightning data and
module, evaluation suites and the demo section."""

from gnnalloc.families.edge.training._losses import per_user_loss
from gnnalloc.families.edge.training.data import (
    InstanceBatch, InstanceDataModule, InstanceSet, collate_instances,
)
from gnnalloc.families.edge.training.module import AllocatorModule

__all__ = [
    "AllocatorModule", "InstanceBatch", "InstanceDataModule", "InstanceSet", "collate_instances",
    "per_user_loss",
]
