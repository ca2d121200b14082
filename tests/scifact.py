"""SciFact's corpus for the integration tests: the repo's `datasets/scifact` (what `make
datasets` links) or the shared copy beside the checkout."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]


def scifact_dir() -> Path:
    for candidate in (REPO / "datasets/scifact", REPO.parent / "shared/datasets/scifact"):
        if (candidate / "corpus.jsonl").exists():
            return candidate
    raise FileNotFoundError("SciFact not found in datasets/scifact or ../shared/datasets")


def scifact_docs(n: int) -> list[dict[str, Any]]:
    """The first n documents of the corpus (``_id``, ``title``, ``text``)."""
    with (scifact_dir() / "corpus.jsonl").open("rb") as f:
        return [orjson.loads(line) for line in itertools.islice(f, n)]
