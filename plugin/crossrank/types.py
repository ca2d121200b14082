"""Shared vocabulary of the data path."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

JSON: TypeAlias = Any
"""A decoded JSON value (dict, list, str, int, float, bool or None)."""

JSONObject: TypeAlias = dict[str, Any]

Hit: TypeAlias = dict[str, Any]
"""One element of ``hits.hits`` in an OpenSearch search response."""

Pair: TypeAlias = tuple[str, str]
"""A (query, document) text pair for a cross-encoder."""

Scores: TypeAlias = npt.NDArray[np.float32]
"""One score per pair, in the order the pairs were given."""


def hit_key(hit: Hit) -> str:
    """A hit's identity across first-stage lists (BM25, k-NN): its index and id."""
    return f"{hit.get('_index')}\0{hit.get('_id')}"
