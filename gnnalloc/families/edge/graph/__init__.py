"""Heterogeneous graphs of instances: node/edge features, metapaths, batching."""

from gnnalloc.families.edge.graph._builder import (
    DEFAULT_MAX_METAPATH_NEIGHBORS,
    EDGE_TYPES,
    METADATA,
    SCHEMA,
    NODE_TYPES,
    build_graph,
    collate_graphs,
    metapath_edges,
)
from gnnalloc.families.edge.graph._features import (
    CANDIDATE_FEATURES,
    LINK_FEATURES,
    SERVER_FEATURES,
    USER_FEATURES,
    candidate_features,
    graph_features,
    link_features,
    server_features,
    user_features,
)

__all__ = [
    "CANDIDATE_FEATURES", "DEFAULT_MAX_METAPATH_NEIGHBORS", "EDGE_TYPES", "LINK_FEATURES",
    "METADATA", "NODE_TYPES", "SCHEMA", "SERVER_FEATURES", "USER_FEATURES", "build_graph",
    "candidate_features", "collate_graphs", "graph_features", "link_features", "metapath_edges", "server_features",
    "user_features",
]
