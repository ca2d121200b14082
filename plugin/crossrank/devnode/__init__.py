"""A real OpenSearch node for development and tests, assembled from Maven Central."""

from crossrank.devnode.node import OPENSEARCH_VERSION, DevNode, NodeError, NodeStatus

__all__ = ["OPENSEARCH_VERSION", "DevNode", "NodeError", "NodeStatus"]
