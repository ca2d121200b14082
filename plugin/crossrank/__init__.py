"""crossrank: cross-encoder reranking in front of OpenSearch."""

__version__ = "0.1.0"
