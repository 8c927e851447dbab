"""The schema of a family's instance graphs: what the generic encoder is built from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gnnalloc.core import InputError

__all__ = ["EdgeType", "GraphSchema"]

EdgeType = tuple[str, str, str]


@dataclass(frozen=True)
class GraphSchema:
    """Node types with their input feature widths and relations with their edge-feature widths,
    the information of :meth:`torch_geometric.data.HeteroData.metadata` plus the widths a model
    needs to size its layers.

    Args:
        node_features: width of ``graph[t].x`` per node type ``t``, in a fixed order.
        edge_features: every relation ``(src, name, dst)``, in a fixed order, with the width of
            its ``edge_attr`` (0: the relation has no edge features).
    """

    node_features: Mapping[str, int]
    edge_features: Mapping[EdgeType, int]

    def __post_init__(self) -> None:
        for t, width in self.node_features.items():
            if not (isinstance(width, int) and width >= 1):
                raise InputError(f"node_features[{t!r}]: must be a positive integer, got {width!r}")
        for e, width in self.edge_features.items():
            if len(e) != 3 or e[0] not in self.node_features or e[2] not in self.node_features:
                raise InputError(f"edge_features: {e!r} must join two of the node types")
            if not (isinstance(width, int) and width >= 0):
                raise InputError(f"edge_features[{e!r}]: must be a non-negative integer, got {width!r}")

    @property
    def node_types(self) -> list[str]:
        return list(self.node_features)

    @property
    def edge_types(self) -> list[EdgeType]:
        return [tuple(e) for e in self.edge_features]

    @property
    def edge_dims(self) -> dict[EdgeType, int]:
        """Widths of the relations that have edge features."""
        return {tuple(e): w for e, w in self.edge_features.items() if w}

    @property
    def metadata(self) -> tuple[list[str], list[EdgeType]]:
        """``(node types, edge types)``, as :meth:`HeteroData.metadata`."""
        return self.node_types, self.edge_types
