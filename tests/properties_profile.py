"""Settings and input shapes shared by the property suites (``tests/unit/test_properties_*.py``).

Each property runs a modest number of examples by default, so the unit suite stays fast.
``HYPOTHESIS_PROFILE=fuzz`` runs many more (see ``docs/fuzzing.md``)::

    HYPOTHESIS_PROFILE=fuzz .venv/bin/pytest tests/unit/test_properties_*.py \\
        --hypothesis-show-statistics

The profiles apply to the property suites only (``@props()``): loading one here would change
every other hypothesis test in the session.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile("props", max_examples=200, deadline=None)
settings.register_profile(
    "fuzz", max_examples=25_000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "props")
if PROFILE not in ("props", "fuzz"):
    PROFILE = "props"


def props(share: float = 1.0) -> settings:
    """The selected profile; ``share`` scales the example count of an expensive property (at
    least 20)."""
    base = settings.get_profile(PROFILE)
    return settings(base, max_examples=max(20, int(base.max_examples * share)))


# Words of the query DSL and of crossrank's own inputs: arbitrary keys alone would almost never
# reach the interesting branches.
DSL_KEYS = [
    "query", "match", "match_phrase", "match_phrase_prefix", "match_bool_prefix", "multi_match",
    "combined_fields", "query_string", "simple_query_string", "intervals", "all_of", "any_of",
    "intervals", "neural", "neural_sparse", "query_text", "bool", "must", "should", "filter",
    "must_not", "dis_max", "queries", "hybrid", "function_score", "script_score", "boosting",
    "positive", "nested", "constant_score", "term", "knn", "ext", "crossrank", "window",
    "explain", "from", "size", "_source", "includes", "excludes", "stored_fields", "sort",
    "_score", "order", "desc", "asc", "search_after", "text", "title", "_none_",
]
TEXTS = st.sampled_from(["", " ", "gout", "heart attack", "a:b", "*", "[1 TO 2]", "\\", "-x",
                         "true", "false", "5", "-1", "_none_", "_score", "desc"]) | st.text(
    max_size=12)
NUMBERS = (st.integers(-3, 300) | st.integers(-2**63, 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False))
KEYS = st.sampled_from(DSL_KEYS) | st.text(max_size=6)


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Any JSON value (as orjson decodes it), keys and strings mostly from the DSL."""
    leaves = st.none() | st.booleans() | NUMBERS | TEXTS
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(KEYS, children, max_size=5),
        max_leaves=max_leaves)


def json_objects(max_leaves: int = 30) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(KEYS, json_values(max(1, max_leaves // 3)), max_size=5)


def deep(leaf: Any, depth: int, kind: str = "list") -> Any:
    """``leaf`` nested ``depth`` times in lists (or in ``{"a": ...}`` objects), built without
    recursion."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value
