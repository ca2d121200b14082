"""Real OpenSearch nodes for development and tests, assembled from Maven Central."""

from crossrank.devnode.node import (
    DISTRIBUTIONS,
    OPENSEARCH_VERSION,
    DevCluster,
    DevNode,
    NodeError,
    NodeStatus,
    find_java,
    free_cluster_port,
    stop_child,
)

__all__ = ["DISTRIBUTIONS", "OPENSEARCH_VERSION", "DevCluster", "DevNode", "NodeError",
           "NodeStatus", "find_java", "free_cluster_port", "stop_child"]
