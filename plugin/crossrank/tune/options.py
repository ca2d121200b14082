"""What one `crossrank tune` run is asked to do, and its judged queries.

Judgments come as a BEIR directory (``queries.jsonl`` and ``qrels.tsv``, or ``--qrels``) or as
one TSV of ``query text, document id, grade`` (``--judgments``). Only judged queries with at
least one relevant document count.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from crossrank.eval.datasets import Judged
from crossrank.eval.judgments import read_judgments
from crossrank.eval.proxy_client import EvalError
from crossrank.policy import Policy

PLACEHOLDER = "{{query}}"


@dataclass(frozen=True)
class TuneOptions:
    policy: str
    dataset: Path | None = None
    qrels: Path | None = None
    judgments: Path | None = None
    index: str | None = None
    query: str | None = None
    windows: tuple[int, ...] = (10, 20, 30, 50)
    folds: int = 5
    seed: int = 0
    proxy: str = "http://127.0.0.1:8080"
    admin_token: str | None = None
    apply: bool = False
    write_card: Path | None = None
    out: Path | None = None
    limit: int | None = None
    progress: bool = True

    def command_line(self) -> str:
        parts = ["crossrank", "tune", "--policy", self.policy]
        for flag, value in (("--dataset", self.dataset), ("--qrels", self.qrels),
                            ("--judgments", self.judgments), ("--index", self.index),
                            ("--query", self.query), ("--limit", self.limit)):
            if value is not None:
                parts += [flag, str(value)]
        parts += ["--windows", ",".join(map(str, self.windows)), "--folds", str(self.folds),
                  "--seed", str(self.seed)]
        return shlex.join(parts)


def load_judgments(options: TuneOptions) -> Judged:
    return read_judgments(options.dataset, options.qrels, options.judgments, options.limit)


def only_index(policy: Policy) -> str:
    """The index a run searches when none is named: the policy's one concrete index."""
    if len(policy.indices) == 1 and not any(ch in policy.indices[0] for ch in "*?,"):
        return policy.indices[0]
    raise EvalError(f"policy {policy.name} covers {policy.indices}: name the index to search "
                    "with --index")


def search_query(template: str | None, text_fields: Sequence[str]) -> Any:
    if template is None:
        return {"multi_match": {"query": PLACEHOLDER, "fields": list(text_fields)}}
    try:
        parsed = orjson.loads(template)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"--query is not valid JSON: {exc}") from exc
    if PLACEHOLDER not in template or not isinstance(parsed, dict):
        raise ValueError(f"--query must be a JSON object containing {PLACEHOLDER!r}")
    return parsed
