"""Fixtures of the model suites."""

from __future__ import annotations

import pytest

from crossrank.models.sample_texts import pair_sample


@pytest.fixture(scope="module")
def sample_pairs() -> list[list[tuple[str, str]]]:
    """Two real SciFact claims with 50 candidate abstracts each, as (query, document) pairs."""
    sample = pair_sample(queries=2, candidates=50, seed=7)
    return [[(q, d) for d in docs] for q, docs in zip(sample.queries, sample.candidates,
                                                       strict=True)]
