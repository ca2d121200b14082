"""The ingest hook: documents written to an index whose policy has an ``embed`` section get
their vectors on the way in, so hybrid retrieval works without any OpenSearch ML plugin.

``plan`` (what to embed in a write request, and the request with the vectors in),
``documents`` (one document's text and partial updates) and ``mapping`` (the index mapping a
policy needs) are pure; ``embed`` is the one awaiting module. The wire side is
``crossrank.proxy.ingest_handler``.
"""
