"""Run every judged query through the proxy, for each arm and each window K.

Runs that share a policy are interleaved query by query (in an order that rotates from one
query to the next), so that no arm is measured on a colder cache or a busier machine than
another. A few warm-up queries per run come first and are not counted.

Every answer is checked for what the proxy did (``X-Crossrank-Status``, ``X-Crossrank-Hybrid``):
a rerank arm that nothing was reranked for, a hybrid arm answered by BM25 alone, or a plain
arm answered by hybrid retrieval (a policy left over on the index) measures the wrong thing and
stops the evaluation.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from tqdm import tqdm

from crossrank.eval.arms import Arm
from crossrank.eval.datasets import Judged
from crossrank.eval.proxy_client import EvalError, ProxyClient
from crossrank.fusion import LIST_FUSIONS
from crossrank.types import JSONObject

FUSIONS = frozenset(LIST_FUSIONS)  # X-Crossrank-Hybrid when the two lists were fused


@dataclass
class ArmRun:
    """One arm at one window (``None`` for an arm that does not rerank)."""

    arm: Arm
    window: int | None
    ranked: dict[str, list[str]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    hybrid: Counter[str] = field(default_factory=Counter)  # X-Crossrank-Hybrid, when sent
    timings_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.arm.name if self.window is None else f"{self.arm.name}@{self.window}"

    def params(self) -> dict[str, str]:
        if not self.arm.rerank:
            return {"rerank": "false"}
        return {"rerank": "true", "rerank_window": str(self.window)}

    @property
    def needs_policy(self) -> bool:
        return self.arm.rerank or bool(self.arm.policy)

    @property
    def fused(self) -> int:
        """Searches answered by hybrid retrieval (the two lists fused)."""
        return sum(n for outcome, n in self.hybrid.items() if outcome in FUSIONS)


@dataclass(frozen=True)
class PolicySpec:
    """The base policy the evaluation puts on its index (arms may add fields).

    With ``embedder``, the policy has an ``embed`` section: the proxy's ingest hook writes each
    document's vector (of the same text the reranker reads) to ``vector_field``, and the
    ``hybrid`` sections of the arms take their field and model from it.
    """

    name: str
    index: str
    model: str
    windows: tuple[int, ...]
    text_fields: tuple[str, ...] = ("title", "text")
    template: str = "{title}. {text}"
    embedder: str | None = None
    vector_field: str = "embedding"
    blend_alpha: float | None = None

    def body(self, extra: JSONObject) -> JSONObject:
        widest = max(self.windows)
        base: JSONObject = {"indices": [self.index], "text_fields": list(self.text_fields),
                            "template": self.template, "window": widest, "max_window": widest,
                            "model": self.model}
        if self.blend_alpha is not None:
            base.update(score_mode="blend", blend_alpha=self.blend_alpha)
        if self.embedder is not None:
            base["embed"] = {"model": self.embedder, "vector_field": self.vector_field}
        return {**base, **extra}


def plan_runs(arms: Sequence[Arm], windows: Sequence[int]) -> list[ArmRun]:
    runs: list[ArmRun] = []
    for arm in arms:
        if arm.rerank:
            runs.extend(ArmRun(arm, window) for window in windows)
        else:
            runs.append(ArmRun(arm, None))
    return runs


def search_body(arm: Arm, text: str, size: int) -> JSONObject:
    # _source is not needed to judge a ranking; the proxy fetches the text it scores itself.
    return {"size": size, "query": arm.search_query(text), "_source": False}


def run_searches(client: ProxyClient, index: str, judged: Judged, runs: list[ArmRun], *,
                 size: int = 100, policy: PolicySpec | None = None, warmup: int = 3,
                 progress: bool = True) -> list[ArmRun]:
    """Fill every run with its rankings, latencies and proxy outcomes."""
    groups: dict[bytes, list[ArmRun]] = {}
    for run in runs:
        groups.setdefault(orjson.dumps(run.arm.policy, option=orjson.OPT_SORT_KEYS),
                          []).append(run)
    qids = list(judged.queries)
    # Once one run needs the policy, every group puts its own: a group that needs none must
    # not run under the policy the previous group left (say, hybrid on for the bm25 arm).
    manage = policy is not None and any(run.needs_policy for run in runs)
    bar: Any = tqdm(total=len(qids) * len(runs), unit="query", desc="searching",
                    disable=not progress, file=sys.stderr, dynamic_ncols=True)
    with bar:
        for members in groups.values():
            # a run of plain baselines only needs no policy (nor the admin token)
            if manage:
                assert policy is not None
                client.put_policy(policy.name, policy.body(members[0].arm.policy))
            for qid in qids[:warmup]:
                for run in members:
                    client.search(index, search_body(run.arm, judged.queries[qid], size),
                                  run.params())
            for position, qid in enumerate(qids):
                turn = position % len(members)
                for run in members[turn:] + members[:turn]:
                    _search_one(client, index, run, qid, judged.queries[qid], size)
                    bar.update(1)
    for run in runs:
        check_outcomes(run)
    return runs


def _search_one(client: ProxyClient, index: str, run: ArmRun, qid: str, text: str,
                size: int) -> None:
    answer = client.search(index, search_body(run.arm, text, size), run.params())
    hits = answer.body.get("hits", {}).get("hits", [])
    run.ranked[qid] = [str(hit["_id"]) for hit in hits]
    run.latencies_ms.append(answer.elapsed_ms)
    run.statuses[answer.status or "none"] += 1
    if answer.reason:
        run.reasons[answer.reason] += 1
    if answer.hybrid:
        run.hybrid[answer.hybrid] += 1
    for name, ms in answer.server_timing.items():
        run.timings_ms.setdefault(name, []).append(ms)


def check_outcomes(run: ArmRun) -> None:
    """A rerank arm that the proxy never reranked, a hybrid arm never answered by hybrid
    retrieval, or a plain arm that was, measures something else: say so loudly."""
    if run.arm.rerank and run.ranked and run.statuses["reranked"] == 0:
        seen = ", ".join(f"{status} x{n}" for status, n in run.statuses.items())
        reasons = ", ".join(f"{reason} x{n}" for reason, n in run.reasons.items()) or "none"
        raise EvalError(f"arm {run.key}: the proxy reranked none of {len(run.ranked)} "
                        f"searches (X-Crossrank-Status: {seen}; reasons: {reasons}); check "
                        "that a policy covers the index and its model is loaded")
    outcomes = ", ".join(f"{outcome} x{n}" for outcome, n in run.hybrid.items()) or "absent"
    if run.arm.hybrid and run.ranked and run.fused == 0:
        raise EvalError(f"arm {run.key}: none of {len(run.ranked)} searches was answered by "
                        f"hybrid retrieval (X-Crossrank-Hybrid: {outcomes}); check that the "
                        "index's policy has the arm's hybrid section and that its embedder "
                        "is loaded")
    if not run.arm.hybrid and run.fused:
        raise EvalError(f"arm {run.key}: {run.fused} of {len(run.ranked)} searches were "
                        f"answered by hybrid retrieval (X-Crossrank-Hybrid: {outcomes}) though "
                        "the arm does not ask for it: the policy on the index turns hybrid on "
                        "(with --no-policy the index's own policy decides every arm)")
