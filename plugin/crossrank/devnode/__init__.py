"""A real OpenSearch node for development and tests, assembled from Maven Central."""

from crossrank.devnode.node import (
    OPENSEARCH_VERSION,
    DevNode,
    NodeError,
    NodeStatus,
    stop_child,
)

__all__ = ["OPENSEARCH_VERSION", "DevNode", "NodeError", "NodeStatus", "stop_child"]
