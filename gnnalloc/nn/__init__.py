"""Neural network parts shared by every family: the HAN encoder of heterogeneous instance graphs
(built from a :class:`GraphSchema`) and checkpoint loading."""

from gnnalloc.nn._checkpoint import (
    CHECKPOINT_FORMAT, DEFAULT_FAMILY, Checkpointed, Configured, checkpoint_family, checkpoint_metadata, checkpoint_payload,
    load_checkpoint_data, rebuild_model,
)
from gnnalloc.nn._schema import EdgeType, GraphSchema
from gnnalloc.nn._shipped import ShippedModel
from gnnalloc.nn.encoder import HANEncoder, HANLayer, RelationAttention, SemanticAttention, check_dropout, fast_inference

__all__ = [
    "CHECKPOINT_FORMAT", "DEFAULT_FAMILY", "EdgeType", "GraphSchema", "HANEncoder", "HANLayer", "RelationAttention", "SemanticAttention",
    "ShippedModel", "check_dropout", "fast_inference",
    "Checkpointed", "Configured", "checkpoint_family", "checkpoint_metadata", "checkpoint_payload", "load_checkpoint_data", "rebuild_model",
]
