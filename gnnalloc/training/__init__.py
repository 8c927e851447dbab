"""Training and evaluation: Lightning data and module, the CLI, evaluation suites and plots."""

from gnnalloc.training.data import InstanceBatch, InstanceDataModule, InstanceSet, collate_instances
from gnnalloc.training.module import AllocatorModule

__all__ = ["AllocatorModule", "InstanceBatch", "InstanceDataModule", "InstanceSet", "collate_instances"]
