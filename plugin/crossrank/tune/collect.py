"""Fetch every judged query's window through the proxy, once, with what each candidate needs.

One search per query, ``?rerank=true&rerank_window=K`` at the widest window asked for, with
``ext.crossrank.explain``: each hit comes back with its first-stage rank and score, the
reranker's score and, for proxy-side hybrid, its BM25 and k-NN scores. Every setting with a
window up to K is a re-ranking of this answer (``candidates``); nothing else is asked of the
proxy, so a grid of hundreds of settings costs one pass of scoring.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from crossrank.eval.arms import Arm
from crossrank.eval.proxy_client import EvalError, ProxyClient
from crossrank.types import JSONObject


@dataclass(frozen=True)
class Window:
    """One query's first stage (in first-stage order) with the scores of its top K."""

    doc_ids: list[str]
    first_stage: list[float | None]
    rerank: list[float | None]
    """The reranker's score of each hit of the window (None past it)."""
    signals: dict[str, list[float | None]]
    """``bm25`` / ``knn`` per hit, for a hybrid first stage (empty otherwise)."""


@dataclass(frozen=True)
class Collected:
    windows: dict[str, Window]
    retrieve_ms: list[float]
    score_ms: list[float]


def collect(client: ProxyClient, index: str, queries: Mapping[str, str], arm: Arm,
            window: int, *, progress: bool = True) -> Collected:
    windows: dict[str, Window] = {}
    retrieve, score = [], []
    params = {"rerank": "true", "rerank_window": str(window)}
    for qid, text in tqdm(queries.items(), desc="collecting", unit="query", file=sys.stderr,
                          disable=not progress, dynamic_ncols=True):
        body: JSONObject = {"size": window, "query": arm.search_query(text), "_source": False,
                            "ext": {"crossrank": {"explain": True}}}
        answer = client.search(index, body, params)
        if answer.status != "reranked":
            raise EvalError(f"query {qid!r} was not reranked (X-Crossrank-Status: "
                            f"{answer.status or 'absent'}, reason: {answer.reason or 'none'}); "
                            "check the policy covers the index and its model is loaded")
        windows[qid] = window_of(answer.body.get("hits", {}).get("hits", []))
        retrieve.append(answer.server_timing.get("retrieve", 0.0))
        score.append(answer.server_timing.get("score", 0.0))
    return Collected(windows, retrieve, score)


def window_of(hits: list[Any]) -> Window:
    """The explained hits of one answer, put back in first-stage order."""
    explained = [hit for hit in hits if isinstance(hit, dict) and "_crossrank" in hit]
    explained.sort(key=lambda hit: hit["_crossrank"]["first_stage_rank"])
    names = sorted({name for hit in explained
                    for name in (hit["_crossrank"].get("signals") or {})})
    return Window(
        doc_ids=[str(hit["_id"]) for hit in explained],
        first_stage=[_number(hit["_crossrank"].get("first_stage_score")) for hit in explained],
        rerank=[_number(hit["_crossrank"].get("rerank_score")) for hit in explained],
        signals={name: [_number((hit["_crossrank"].get("signals") or {}).get(name))
                        for hit in explained] for name in names})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None
