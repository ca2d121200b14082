"""SciFact's corpus for the integration tests, found where the package looks for it
(``crossrank.models.sample_texts.scifact_dir``: the repo's `datasets/scifact`, or the shared copy
beside the checkout)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson

from crossrank.models.sample_texts import scifact_dir as _found


def scifact_dir() -> Path:
    found = _found()
    if found is None:
        raise FileNotFoundError("SciFact not found in datasets/scifact or ../shared/datasets")
    return found


def scifact_docs(n: int) -> list[dict[str, Any]]:
    """The first n documents of the corpus (``_id``, ``title``, ``text``)."""
    with (scifact_dir() / "corpus.jsonl").open("rb") as f:
        return [orjson.loads(line) for line in itertools.islice(f, n)]
