"""Coverage-guided fuzzing (atheris, libFuzzer) of crossrank's pure request handling.

    .venv/bin/python fuzz/fuzz_requests.py TARGET [libFuzzer flags] [corpus dirs]

TARGET is one of ``plan``, ``query_text``, ``ndjson``, ``merge``, ``ingest``, ``hybrid``. Each
target may raise only its documented errors (``PlanError``, ``NDJSONError``, ``ScoreError``,
``ValueError`` for fusion); any other exception, a failed invariant or a slow input (libFuzzer's
``-timeout``) is a finding, written to ``.crossrank/fuzz/TARGET-crash-...``. Without corpus
directories the run keeps its corpus in ``.crossrank/fuzz/TARGET/`` (ignored by git) and also
reads the seeds in ``fuzz/seeds/TARGET/``. See ``fuzz/README.md``.

The ``ndjson`` and ``ingest`` targets read the input as a request body; the others decode it
into JSON values, parameters and scores with ``FuzzedDataProvider`` (``Reader`` below), so that
every input is a well-formed call and mutations explore structure, not JSON syntax.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris  # type: ignore[import-untyped]
import numpy as np
import orjson
import pydantic  # noqa: F401  (imported before instrumentation: only crossrank is instrumented)

with atheris.instrument_imports(include=["crossrank"]):
    from crossrank.ingest.plan import Slot, bulk_ops, complete, plan_ingest, render, rewrite_bulk
    from crossrank.policy import ABSplit, EmbedSection, Policy
    from crossrank.search.errors import NDJSONError, PlanError, ScoreError
    from crossrank.search.hybrid import rrf, rsf
    from crossrank.search.merge import document_texts, merge_response
    from crossrank.search.ndjson import parse_bulk, parse_msearch, render_bulk, render_msearch
    from crossrank.search.plan import CROSSRANK_PARAMS, plan_search
    from crossrank.search.query_text import (
        extract_query_text,
        strip_query_string,
        strip_simple_query_string,
    )

ROOT = Path(__file__).resolve().parents[1]

WORDS = [
    "query", "match", "match_phrase", "multi_match", "combined_fields", "query_string",
    "simple_query_string", "intervals", "all_of", "any_of", "neural", "query_text", "bool",
    "must", "should", "filter", "must_not", "dis_max", "queries", "hybrid", "function_score",
    "boosting", "positive", "nested", "constant_score", "knn", "ext", "crossrank", "window",
    "explain", "from", "size", "_source", "includes", "excludes", "stored_fields", "sort",
    "_score", "order", "desc", "search_after", "title", "text", "meta", "meta.title", "_none_",
    "*", "true", "false", "0", "5", "-1", "a:[1 TO 2]", "_exists_:x", "-y", "\\", " ", "",
    "hits", "_id", "_index", "total", "max_score", "took", "index", "create", "update",
    "delete", "doc", "upsert", "doc_as_upsert", "script", "emb",
]
PARAMS = ["rerank", "rerank_window", "rerank_query", "from", "size", "_source",
          "_source_includes", "_source_excludes", "scroll", "q", "sort", "stored_fields", "x"]
BASE = Policy(name="docs", text_fields=["title", "text"], window=5, max_window=20)
POLICIES: list[Policy | None] = [
    None,
    BASE,
    Policy(name="docs", text_fields=["meta.title"], window=1, max_window=1, score_mode="blend"),
    Policy(name="docs", enabled=False),
    Policy(name="docs", ab=ABSplit(mode="split"), window=3, max_window=10),
    Policy(name="docs", text_fields=["title", "meta.text"], template="{title}: {meta.text}",
           window=12, max_window=100, score_mode="blend", blend_alpha=0.3),
]
EMBED = {"docs": EmbedSection(model="m", vector_field="emb", text_fields=["title", "text"],
                              separator=" "),
         "nested": EmbedSection(model="m", vector_field="meta.vec", text_fields=["meta.title"],
                                template="{meta.title}!", separator=" ")}


class Reader:
    """Decodes fuzzer bytes into call arguments; runs out gracefully (empty values)."""

    def __init__(self, data: bytes) -> None:
        self.fdp = atheris.FuzzedDataProvider(data)

    def pick(self, count: int) -> int:
        return int(self.fdp.ConsumeIntInRange(0, count - 1))

    def text(self) -> str:
        if self.fdp.ConsumeBool():
            return WORDS[self.pick(len(WORDS))]
        return str(self.fdp.ConsumeUnicodeNoSurrogates(self.pick(24)))

    def json(self, depth: int = 0) -> Any:
        kind = self.pick(12)
        if kind == 0 or self.fdp.remaining_bytes() == 0:
            return None
        if kind == 1:
            return self.fdp.ConsumeBool()
        if kind == 2:
            return self.fdp.ConsumeIntInRange(-3, 300)
        if kind == 3:
            return self.fdp.ConsumeIntInRange(-(2**63), 2**63 - 1)
        if kind == 4:
            value = self.fdp.ConsumeRegularFloat()
            return value if math.isfinite(value) else 0.0
        if kind in (5, 6):
            return self.text()
        if kind == 7 and depth == 0:  # a deep chain, at most as deep as orjson reads (1,024)
            leaf, levels, target = self.json(depth + 1), 1, self.pick(1020)
            while levels < target:
                leaf = [leaf] if levels % 3 else {"bool": {"must": leaf}}
                levels += 1 if levels % 3 else 2
            return leaf
        if depth >= 8:
            return self.text()
        if kind in (7, 8):
            return [self.json(depth + 1) for _ in range(self.pick(5))]
        return {self.text(): self.json(depth + 1) for _ in range(self.pick(6))}

    def floats(self, count: int) -> list[float]:
        return [float(self.fdp.ConsumeFloat()) for _ in range(count)]


def target_plan(data: bytes) -> None:
    read = Reader(data)
    body = read.json() if read.pick(8) == 0 else {
        read.text(): read.json(1) for _ in range(read.pick(8))}
    params = [(PARAMS[read.pick(len(PARAMS))], read.text()) for _ in range(read.pick(5))]
    policy = POLICIES[read.pick(len(POLICIES))]
    headers = {"x-crossrank-user": read.text()} if read.fdp.ConsumeBool() else {}
    try:
        plan = plan_search(body, params, policy, headers)
    except PlanError as exc:
        assert exc.reason
        return
    assert not any(name in CROSSRANK_PARAMS for name, _ in plan.upstream_params)
    if plan.rerank:
        assert plan.policy is not None and plan.query_text
        assert 0 <= plan.from_ < plan.window <= plan.policy.max_window and plan.size >= 1
        assert plan.upstream_body is not None and plan.upstream_body["from"] == 0


def target_query_text(data: bytes) -> None:
    read = Reader(data)
    if read.fdp.ConsumeBool():
        text = extract_query_text(read.json())
        assert text is None or (text and text == " ".join(text.split()))
        return
    raw = str(read.fdp.ConsumeUnicodeNoSurrogates(len(data)))
    for strip in (strip_query_string, strip_simple_query_string):
        out = strip(raw)
        assert out == " ".join(out.split())


def target_ndjson(data: bytes) -> None:
    lines = len(data.split(b"\n"))
    try:
        searches = parse_msearch(data)
    except NDJSONError as exc:
        assert 1 <= exc.line <= lines
    else:
        try:
            rendered = render_msearch(searches)
        except TypeError:  # orjson writes at most 254 levels; parsing reads 1,024
            pass
        else:
            assert parse_msearch(rendered) == searches
    try:
        items = parse_bulk(data)
    except NDJSONError as exc:
        assert 1 <= exc.line <= lines
        return
    for item in items:
        try:
            item.load_source()
        except NDJSONError as exc:
            assert exc.line == item.line + 1
    again = parse_bulk(render_bulk(items))
    assert [(i.action, i.meta, i.source_line) for i in again] == [
        (i.action, i.meta, i.source_line) for i in items]


def target_merge(data: bytes) -> None:
    read = Reader(data)
    policy = POLICIES[read.pick(len(POLICIES))]
    if policy is None or not policy.enabled or policy.ab.mode != "always":
        policy = BASE
    body: dict[str, Any] = {"query": {"match": {"title": "gout"}},
                            "from": read.pick(15), "size": 1 + read.pick(15)}
    if read.fdp.ConsumeBool():
        body["_source"] = read.json(1)
    if read.fdp.ConsumeBool():
        body["ext"] = {"crossrank": {"explain": True}}
    try:
        plan = plan_search(body, [], policy, {})
    except PlanError:
        return
    if not plan.rerank:
        return
    hits: list[Any] = []
    for n in range(read.pick(25)):
        if read.pick(16) == 0:
            hits.append([n, read.json(1)])  # not an object
            continue
        hit = {read.text(): read.json(1) for _ in range(read.pick(3))}
        hit.update({"_id": str(n), "_score": read.json(2), "_source": read.json(1)})
        hits.append(hit)
    response = {read.text(): read.json(1) for _ in range(read.pick(3))}
    response["hits"] = {"hits": hits, "total": read.json(2)}
    window = hits[: plan.window]
    texts, _ = document_texts(window, policy)
    assert len(texts) == len(window)
    choice = read.pick(4)
    scores: Any = None
    if choice == 1:
        scores = read.floats(len(window))
    elif choice == 2:
        scores = np.asarray(read.floats(len(window)), dtype=np.float32)
    elif choice == 3:
        scores = read.floats(read.pick(30))
    try:
        merged = merge_response(plan, response, scores, extra_took_ms=read.pick(1000))
    except ScoreError:
        assert scores is not None and (len(scores) != len(window) or not all(
            math.isfinite(s) for s in scores))
        return
    page = merged["hits"]["hits"]
    keys = [hit.get("_id") if isinstance(hit, dict) else repr(hit) for hit in page]
    assert len(keys) == len(set(keys)) == max(0, min(plan.size, len(hits) - plan.from_))
    if scores is not None:
        ranked = [hit["_score"] for hit in page if isinstance(hit, dict)
                  and hit["_score"] is not None]
        assert ranked == sorted(ranked, reverse=True)


def target_ingest(data: bytes) -> None:
    try:
        ops = bulk_ops(data, "docs", None)
    except NDJSONError:
        return
    plan = plan_ingest(ops, EMBED.get)
    complete(plan, {lookup.op: {"title": "stored", "meta": {"title": "x"}}
                    for lookup in plan.lookups})
    vectors: dict[Slot, Any] = {e.slot: None if e.text is None else [0.5]
                                for e in plan.embeddings}
    new_bodies = render(plan, vectors)
    out = rewrite_bulk(data, ops, new_bodies)
    assert [(i.action, i.meta) for i in parse_bulk(out)] == [
        (i.action, i.meta) for i in parse_bulk(data)]
    for number in new_bodies:
        assert isinstance(orjson.loads(new_bodies[number]), dict)


def target_hybrid(data: bytes) -> None:
    read = Reader(data)
    lists = [[read.text() for _ in range(read.pick(8))] for _ in range(read.pick(4))]
    weights = read.floats(read.pick(5)) if read.fdp.ConsumeBool() else None
    for fuse in ("rrf", "rsf"):
        try:
            if fuse == "rrf":
                fused = rrf(lists, rank_constant=read.pick(200) - 2, weights=weights)
            else:
                fused = rsf([[(doc, read.floats(1)[0]) for doc in ranked] for ranked in lists],
                            weights=weights)
        except ValueError:
            continue
        docs = [doc for doc, _ in fused]
        assert sorted(docs) == sorted({doc for ranked in lists for doc in ranked})
        scores = [score for _, score in fused]
        assert scores == sorted(scores, reverse=True)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "plan": target_plan, "query_text": target_query_text, "ndjson": target_ndjson,
    "merge": target_merge, "ingest": target_ingest, "hybrid": target_hybrid}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dirs]")
    name = argv[1]
    flags = argv[2:]
    if not any(not flag.startswith("-") for flag in flags):  # no corpus given: the defaults
        work = ROOT / ".crossrank" / "fuzz"
        (work / name).mkdir(parents=True, exist_ok=True)
        flags.append(str(work / name))
        seeds = ROOT / "fuzz" / "seeds" / name
        if seeds.is_dir():
            flags.append(str(seeds))
        if not any(flag.startswith("-artifact_prefix=") for flag in flags):
            flags.insert(0, f"-artifact_prefix={work}/{name}-")
    if not any(flag.startswith("-dict=") for flag in flags):
        flags.insert(0, f"-dict={ROOT / 'fuzz' / 'crossrank.dict'}")
    atheris.Setup([argv[0], *flags], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
