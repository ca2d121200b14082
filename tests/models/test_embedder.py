"""all-MiniLM-L6-v2 exported as an embedder gives sentence-transformers' own vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossrank.models import Embedder
from crossrank.models.sample_texts import pair_sample


@pytest.fixture(scope="module")
def embedder(minilm_embedder_dir: Path) -> Embedder:
    return Embedder.load(minilm_embedder_dir)


def test_manifest_reads_the_sentence_transformers_modules(embedder: Embedder) -> None:
    pooling = embedder.manifest.pooling
    assert pooling is not None
    assert (pooling.mode, pooling.normalize, embedder.dimension) == ("mean", True, 384)
    assert embedder.manifest.max_length == 256  # sentence_bert_config.json's max_seq_length
    assert embedder.manifest.parity is not None
    assert embedder.manifest.parity.min_cosine is not None
    assert embedder.manifest.parity.min_cosine > 0.9999


def test_vectors_match_sentence_transformers(embedder: Embedder) -> None:
    from sentence_transformers import SentenceTransformer

    from model_fixtures import minilm_dir

    sample = pair_sample(queries=3, candidates=20, seed=3)
    texts = sample.queries + [doc for docs in sample.candidates for doc in docs]
    reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(
        texts, batch_size=16, convert_to_numpy=True)
    got = embedder.embed(texts)
    assert got.shape == (len(texts), 384) and got.dtype == np.float32
    cosine = (got * reference).sum(axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
    assert cosine.min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_empty_odd_and_long_texts(embedder: Embedder) -> None:
    assert embedder.embed([]).shape == (0, 384)
    texts = ["", "维生素D缺乏与骨折风险", "word " * 5000, "short"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (4, 384) and np.isfinite(vectors).all()
    # order is the input's, whatever the length-sorted batching did
    np.testing.assert_allclose(vectors[3], embedder.embed(["short"])[0], atol=1e-5)


def test_batches_in_parallel_give_the_same_vectors(minilm_embedder_dir: Path) -> None:
    sample = pair_sample(queries=2, candidates=10)
    texts = sample.queries + [doc for docs in sample.candidates for doc in docs]
    serial = Embedder.load(minilm_embedder_dir, parallel_runs=1, max_batch_tokens=64)
    parallel = Embedder.load(minilm_embedder_dir, parallel_runs=2, max_batch_tokens=64)
    np.testing.assert_array_equal(parallel.embed(texts), serial.embed(texts))
