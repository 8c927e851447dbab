"""Family-agnostic training plumbing: the LightningCLI entry point and checkpoint export.

Each family brings its own Lightning module and data module (the edge family's live in
:mod:`gnnalloc.families.edge.training`); the training config names the family.
"""

from gnnalloc.training._datasets import GraphList
from gnnalloc.training.export import best_checkpoint, export_checkpoint

__all__ = ["GraphList", "best_checkpoint", "export_checkpoint"]
