"""The arms an evaluation compares: data, not code.

An arm is a search body (with ``{{query}}`` where the query text goes), whether the proxy is
asked to rerank it (``?rerank=true|false``), and the policy fields it needs on top of the
evaluation's base policy. A rerank arm runs once per window K (``?rerank_window=K``); a
baseline arm runs once. Each arm is compared with ``baseline`` (if set) and with the first
arm of the list, the reference.

The built-in ``hybrid`` arms are two such entries whose ``policy`` turns proxy-side hybrid on.
An arm whose policy has an enabled ``hybrid`` section needs vectors in the index: the
evaluation then indexes through a policy with an ``embed`` section (see ``evaluation.py``).
Users can also pass their own arms in a JSON file::

    {"arms": [{"name": "title-only", "rerank": false,
               "query": {"match": {"title": "{{query}}"}}}]}
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from crossrank.types import JSON, JSONObject

PLACEHOLDER = "{{query}}"


class ArmError(ValueError):
    """An unknown arm name or a malformed arms file."""


@dataclass(frozen=True)
class Arm:
    name: str
    query: JSON
    rerank: bool
    policy: JSONObject = field(default_factory=dict)
    baseline: str | None = None
    description: str = ""

    @property
    def hybrid(self) -> bool:
        """Whether the arm's policy turns proxy-side hybrid on (its index needs vectors)."""
        section = self.policy.get("hybrid")
        return isinstance(section, dict) and section.get("enabled", True) is not False

    def search_query(self, text: str) -> JSON:
        """The arm's query DSL with the placeholder replaced by ``text`` (no string
        formatting: the text is inserted as a JSON value, so quotes and braces are safe)."""
        return _substitute(self.query, text)


def _substitute(value: Any, text: str) -> Any:
    if isinstance(value, str):
        return text if value == PLACEHOLDER else value.replace(PLACEHOLDER, text)
    if isinstance(value, dict):
        return {key: _substitute(item, text) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, text) for item in value]
    return copy.deepcopy(value)


# best_fields with tie_breaker 0.3: the best field's score plus 0.3 x the other's. Chosen on
# SciFact's *train* judgments (nDCG@10, english analyzer): 0.682 at tie_breaker 0 (plain
# best_fields), 0.692 at 0.1, 0.698 at 0.3, 0.694 at 0.5, 0.674 for most_fields.
BM25_QUERY: JSONObject = {"multi_match": {"query": PLACEHOLDER, "fields": ["title", "text"],
                                          "tie_breaker": 0.3}}

# Proxy-side hybrid as benchmarks/bench_hybrid.py measured it on SciFact (docs/benchmarks.md,
# "Hybrid first stage"): RRF, rank_constant 60, equal weights, depth 100 per side gave nDCG@10
# 0.713 and Recall@100 0.955 against BM25's 0.670 / 0.922. RSF (min-max) scored a little higher
# on nDCG@10 (0.720, the same recall), but on the test split, which chooses nothing here; RRF
# is also the policy's default and OpenSearch's native hybrid ranker. These are the policy's
# defaults, spelled out so the report shows them. The vector field and the embedder come from
# the base policy's ``embed`` section; the BM25 side is the bm25 arm's query, so ``hybrid``
# differs from ``bm25`` by the k-NN side only.
HYBRID_POLICY: JSONObject = {"hybrid": {"fusion": "rrf", "rank_constant": 60,
                                        "weights": [1.0, 1.0], "depth": 100}}

BUILTIN_ARMS: dict[str, Arm] = {arm.name: arm for arm in (
    Arm("bm25", BM25_QUERY, rerank=False,
        description="BM25 (multi_match over title and text), as OpenSearch answers it"),
    Arm("bm25+rerank", BM25_QUERY, rerank=True, baseline="bm25",
        description="BM25 candidates, the top K reranked by the cross-encoder"),
    Arm("hybrid", BM25_QUERY, rerank=False, policy=HYBRID_POLICY, baseline="bm25",
        description="BM25 and k-NN (the embedder's vectors) fused by RRF in the proxy"),
    Arm("hybrid+rerank", BM25_QUERY, rerank=True, policy=HYBRID_POLICY, baseline="hybrid",
        description="hybrid candidates, the top K reranked by the cross-encoder"),
)}
# The hybrid arms need an embedder loaded by the proxy and an index with vectors (embedding a
# corpus through the proxy takes minutes: SciFact's 5,183 abstracts about 14 on two cores), so
# they run only when asked for: --arms bm25,bm25+rerank,hybrid,hybrid+rerank.
DEFAULT_ARMS = ("bm25", "bm25+rerank")


def select_arms(names: Sequence[str], arms_file: Path | None = None) -> list[Arm]:
    """The named arms, from the built-ins and the arms file (which may override them)."""
    available = dict(BUILTIN_ARMS)
    if arms_file is not None:
        available.update({arm.name: arm for arm in load_arms_file(arms_file)})
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ArmError(f"unknown arm(s) {', '.join(unknown)}; "
                       f"available: {', '.join(sorted(available))}")
    if len(set(names)) != len(names):
        raise ArmError("an arm is named twice")
    if not names:
        raise ArmError("no arms to run")
    return [available[name] for name in names]


def load_arms_file(path: Path) -> list[Arm]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ArmError(f"{path}: cannot read the arms file ({exc})") from exc
    entries = data.get("arms") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ArmError(f"{path}: expected {{\"arms\": [...]}}")
    arms = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ArmError(f"{path}: arm #{number} is not an object")
        unknown = set(entry) - {"name", "query", "rerank", "policy", "baseline", "description"}
        if unknown:
            raise ArmError(f"{path}: arm #{number} has unknown fields {sorted(unknown)}")
        name, query = entry.get("name"), entry.get("query")
        if not isinstance(name, str) or not name:
            raise ArmError(f"{path}: arm #{number} needs a non-empty string 'name'")
        if not isinstance(query, dict) or PLACEHOLDER not in orjson.dumps(query).decode():
            raise ArmError(f"{path}: arm {name!r} needs a 'query' object containing "
                           f"{PLACEHOLDER!r}")
        policy = entry.get("policy", {})
        if not isinstance(policy, dict):
            raise ArmError(f"{path}: arm {name!r}: 'policy' must be an object")
        arms.append(Arm(name, query, rerank=bool(entry.get("rerank", False)), policy=policy,
                        baseline=entry.get("baseline"),
                        description=str(entry.get("description", ""))))
    return arms
