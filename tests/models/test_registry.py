"""The registry: named models, loaded once, scored off the event loop, in order."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crossrank.models import (
    CrossEncoder,
    ManifestError,
    ModelKindError,
    ModelLookupError,
    ModelRegistry,
    discover_models,
)
from crossrank.models.batcher import BatchLimits
from crossrank.models.sample_texts import pair_sample


@pytest.fixture(scope="module")
def registry(tiny_cross_encoder_dir: Path,
             minilm_embedder_dir: Path) -> Iterator[ModelRegistry]:
    models = ModelRegistry({"rerank": tiny_cross_encoder_dir, "embed": minilm_embedder_dir},
                           intra_op_threads=1)
    models.warmup()
    yield models
    models.close()


@pytest.fixture(scope="module")
def requests() -> list[list[tuple[str, str]]]:
    sample = pair_sample(queries=3, candidates=50, seed=11)
    pairs = [(q, d) for q, docs in zip(sample.queries, sample.candidates, strict=True)
             for d in docs]
    # requests of different sizes and mixed queries, as concurrent searches would send
    return [pairs[i * 7:i * 7 + 1 + i % 13] for i in range(20)]


async def test_concurrent_calls_equal_sequential_calls(
        registry: ModelRegistry, requests: list[list[tuple[str, str]]]) -> None:
    sequential = [await registry.score("rerank", pairs) for pairs in requests]
    concurrent = await asyncio.gather(*(registry.score("rerank", pairs, max_length=None)
                                        for pairs in requests))
    for pairs, one, other in zip(requests, sequential, concurrent, strict=True):
        assert one.shape == (len(pairs),)
        np.testing.assert_allclose(other, one, atol=1e-6)


async def test_batched_registry_gives_each_caller_its_own_scores(
        tiny_cross_encoder_dir: Path, registry: ModelRegistry,
        requests: list[list[tuple[str, str]]]) -> None:
    batched = ModelRegistry({"rerank": tiny_cross_encoder_dir}, intra_op_threads=1,
                            batching=BatchLimits(max_batch_pairs=64, max_wait_ms=5))
    try:
        alone = [await registry.score("rerank", pairs) for pairs in requests]
        together = await asyncio.gather(*(batched.score("rerank", pairs) for pairs in requests))
        stats, waiting = batched.batch_stats()["rerank"]
        await batched.stop_batchers()
    finally:
        batched.close()
    for pairs, one, other in zip(requests, alone, together, strict=True):
        assert other.shape == (len(pairs),)
        # each request is batched on its own, so merging changes nothing, int8 or fp32
        np.testing.assert_array_equal(other, one)
    assert stats.requests == len(requests) and stats.batches < len(requests)
    assert waiting == 0


async def test_blocking_work_runs_off_the_event_loop(registry: ModelRegistry) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    model = registry.cross_encoder("rerank")
    original = model.score

    def spy(*args: object, **kwargs: object) -> np.ndarray:
        seen.append(threading.get_ident())
        return original(*args, **kwargs)  # type: ignore[arg-type]

    model.score = spy  # type: ignore[method-assign]
    try:
        await registry.score("rerank", [("q", "d")])
    finally:
        del model.score
    assert seen and seen[0] != loop_thread


async def test_embed_and_per_call_max_length(registry: ModelRegistry,
                                             tiny_cross_encoder_dir: Path) -> None:
    vectors = await registry.embed("embed", ["a claim", "an abstract"])
    assert vectors.shape == (2, 384)
    doc = "vitamin d and bone fractures in older adults " * 40
    direct = CrossEncoder.load(tiny_cross_encoder_dir)
    got = await registry.score("rerank", [("vitamin d", doc)], max_length=32)
    assert got[0] == pytest.approx(direct.score([("vitamin d", doc)], max_length=32)[0],
                                   abs=1e-6)


async def test_unknown_name_and_wrong_kind(registry: ModelRegistry) -> None:
    with pytest.raises(ModelLookupError, match="unknown model 'nope'") as caught:
        await registry.score("nope", [("q", "d")])
    assert isinstance(caught.value, LookupError)
    assert caught.value.available == ["embed", "rerank"]
    with pytest.raises(ModelKindError, match="'embed' is an embedder, not a cross-encoder"):
        await registry.score("embed", [("q", "d")])
    with pytest.raises(ModelKindError):
        registry.embedder("rerank")
    assert registry.cross_encoder("rerank") is registry.cross_encoder("rerank")  # loaded once


def test_discover_models(tmp_path: Path, tiny_cross_encoder_dir: Path,
                         minilm_embedder_dir: Path) -> None:
    shutil.copytree(tiny_cross_encoder_dir, tmp_path / "tiny")
    shutil.copytree(minilm_embedder_dir, tmp_path / "minilm")
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "model.onnx").write_bytes(b"")
    found = discover_models(tmp_path)
    assert found == {"minilm": tmp_path / "minilm", "tiny": tmp_path / "tiny"}
    assert ModelRegistry(found).kinds == {"minilm": "embedder", "tiny": "cross-encoder"}
    assert discover_models(tmp_path / "missing") == {}


def test_a_directory_without_manifest_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"crossrank\.json"):
        ModelRegistry({"broken": tmp_path})


def test_thread_and_batch_settings_reach_the_loaded_models(tiny_cross_encoder_dir: Path) -> None:
    import onnxruntime as ort

    from crossrank.config import Settings
    from crossrank.models.token_batches import DEFAULT_MAX_BATCH_TOKENS
    from crossrank.server import build_app

    assert Settings().max_batch_tokens == DEFAULT_MAX_BATCH_TOKENS  # written out twice
    settings = Settings(models={"rerank": tiny_cross_encoder_dir}, parallel_runs=3,
                        max_batch_tokens=64, graph_optimization="basic",
                        execution_provider="cpu", admin={"enabled": False})
    app = build_app(settings)
    registry = app.scorer
    assert isinstance(registry, ModelRegistry)
    try:
        model = registry.cross_encoder("rerank")
        assert model.max_batch_tokens == 64 and model._session.parallel_runs == 3
        options = model._session._session.get_session_options()
        assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        assert model._session.providers == ["CPUExecutionProvider"]
    finally:
        registry.close()
