"""The search path: plan → pipeline (retrieve through a ``Retriever``, score) → merge, with
query text, scoring resolution and hybrid planning beside them.

Everything here except ``pipeline`` is pure: JSON in, JSON out, no I/O; the retriever that
talks to OpenSearch is the proxy's (``crossrank.proxy.retrieval``).
"""
