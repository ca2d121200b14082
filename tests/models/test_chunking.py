"""Long documents read in windows: each window holds the query and a stretch of the document,
consecutive windows share the overlap, the pair scores as its best window, and documents
that fit one window score exactly as without chunking."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from crossrank.models import CrossEncoder
from crossrank.models.tokenization import Chunking, Tokenizer

QUERY = "what drives tumour growth"
LONG = " ".join(f"word{i}" for i in range(300))


@pytest.fixture(scope="module")
def model(tiny_cross_encoder_dir: Path) -> CrossEncoder:
    return CrossEncoder.load(tiny_cross_encoder_dir)


@pytest.fixture(scope="module")
def tokenizer(tiny_cross_encoder_dir: Path) -> Tokenizer:
    return Tokenizer(tiny_cross_encoder_dir / "tokenizer.json")


def test_windows_cover_the_document_with_the_query_in_each(tokenizer: Tokenizer) -> None:
    [windows] = tokenizer.encode_pair_windows([(QUERY, LONG)], 64,
                                              Chunking(max_chunks=64, overlap=8))
    assert len(windows) > 5
    assert all(len(w.ids) <= 64 for w in windows)
    query_ids = windows[0].ids[: windows[0].type_ids.index(1)]
    assert all(w.ids[: len(query_ids)] == query_ids for w in windows)
    # each window's document part starts 8 tokens before the previous one ended
    docs = [w.ids[len(query_ids):-1] for w in windows]
    assert all(a[-8:] == b[:8] for a, b in itertools.pairwise(docs))
    capped = tokenizer.encode_pair_windows([(QUERY, LONG)], 64, Chunking(max_chunks=3))
    assert len(capped[0]) == 3


def test_a_short_document_scores_as_without_chunking(model: CrossEncoder) -> None:
    pairs = [(QUERY, "tumour growth in mice"), (QUERY, "bread")]
    plain = model.score(pairs)
    chunked = model.score(pairs, chunking=Chunking(max_chunks=8))
    np.testing.assert_allclose(chunked, plain, atol=1e-6)


def test_a_long_document_scores_as_its_best_window(model: CrossEncoder,
                                                   tokenizer: Tokenizer) -> None:
    chunking = Chunking(max_chunks=64, overlap=8)
    [windows] = tokenizer.encode_pair_windows([(QUERY, LONG)], 64, chunking)
    texts = [tokenizer._own().decode(w.ids[w.type_ids.index(1):]) for w in windows]
    one_by_one = model.score([(QUERY, t) for t in texts], max_length=64)
    [best] = model.score([(QUERY, LONG)], max_length=64, chunking=chunking)
    assert best == pytest.approx(float(one_by_one.max()), abs=2e-2)
    assert best >= float(model.score([(QUERY, LONG)], max_length=64)[0]) - 1e-6


def test_doc_tokens_reads_only_the_documents_first_tokens(model: CrossEncoder,
                                                          tokenizer: Tokenizer) -> None:
    [cut] = tokenizer.cut_texts([LONG], 4)
    assert cut == "word0 word1"[: len(cut)] and len(cut) < 20
    scored = model.score([(QUERY, LONG)], chunking=Chunking(doc_tokens=4))
    np.testing.assert_allclose(scored, model.score([(QUERY, cut)]), atol=1e-6)
    assert tokenizer.cut_texts(["short"], 50) == ["short"]


def test_requests_with_chunking_keep_their_own_scores(model: CrossEncoder) -> None:
    requests = [[(QUERY, LONG), (QUERY, "tumour")], [(QUERY, "bread")]]
    chunking = Chunking(max_chunks=4)
    each = model.score_each(requests, chunking=chunking)
    for pairs, scores in zip(requests, each, strict=True):
        np.testing.assert_allclose(scores, model.score(pairs, chunking=chunking), atol=1e-6)


def test_chunking_settings_are_checked() -> None:
    for bad in ({"max_chunks": 0}, {"overlap": -1}, {"doc_tokens": 0}):
        with pytest.raises(ValueError):
            Chunking(**bad)  # type: ignore[arg-type]
