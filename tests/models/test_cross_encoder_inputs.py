"""What callers see for awkward inputs: empty, huge, non-ASCII, over-long queries."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from crossrank.models import CrossEncoder

QUERY = "Vitamin D deficiency increases the risk of fractures"
DOCS = [
    "Low vitamin D levels were associated with hip fractures in older women.",
    "The mitochondrial genome encodes thirteen proteins.",
    "Calcium absorption depends on vitamin D.",
]


@pytest.fixture(scope="module")
def model(tiny_cross_encoder_dir: Path) -> CrossEncoder:
    return CrossEncoder.load(tiny_cross_encoder_dir)


def test_empty_candidate_list(model: CrossEncoder) -> None:
    scores = model.score([])
    assert scores.shape == (0,) and scores.dtype == np.float32
    assert model.rank(QUERY, []) == []


def test_one_score_per_pair_in_input_order(model: CrossEncoder) -> None:
    pairs = [(QUERY, doc) for doc in DOCS]
    together = model.score(pairs)
    alone = np.array([model.score([pair])[0] for pair in pairs])
    reversed_ = model.score(pairs[::-1])[::-1]
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together, reversed_, atol=1e-6)
    assert ((together > 0) & (together < 1)).all()  # the manifest's sigmoid


def test_empty_and_whitespace_documents_get_finite_scores(model: CrossEncoder) -> None:
    scores = model.score([(QUERY, ""), (QUERY, "   "), ("", DOCS[0]), ("", "")])
    assert np.isfinite(scores).all()
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)  # both are [CLS] q [SEP] [SEP]


def test_long_document_is_cut_to_max_length(model: CrossEncoder) -> None:
    long_doc = DOCS[0] + " " + "filler words about nothing in particular " * 2000
    scores = model.score([(QUERY, long_doc), (QUERY, DOCS[0])])
    assert np.isfinite(scores).all()
    # only the cut matters: the same first 20 tokens give the same score at max_length 32
    short = model.score([(QUERY, long_doc), (QUERY, long_doc[:300])], max_length=32)
    assert short[0] == pytest.approx(short[1], abs=1e-6)


def test_query_longer_than_max_length_is_cut_too(model: CrossEncoder) -> None:
    long_query = " ".join([QUERY] * 100)
    pairs = [(long_query, doc) for doc in DOCS] + [(QUERY, DOCS[0])]
    scores = model.score(pairs, max_length=64)
    assert np.isfinite(scores).all() and scores.shape == (4,)
    # the pair with a normal query is scored as it would be alone
    assert scores[3] == pytest.approx(model.score([(QUERY, DOCS[0])], max_length=64)[0], abs=1e-6)
    assert model.score([(long_query, "")], max_length=16).shape == (1,)


def test_non_ascii_text(model: CrossEncoder) -> None:
    pairs = [("Vitamin-D-Mangel erhöht das Frakturrisiko", "Niedrige Vitamin-D-Spiegel … Hüfte"),
             ("维生素D缺乏", "维生素D缺乏与骨折风险增加有关。"),
             ("émojis 🦴💊", "naïve café — “quotes” \u200b zero width"),
             (QUERY, "\x00\x01 control characters \t\n")]
    scores = model.score(pairs)
    assert scores.shape == (4,) and np.isfinite(scores).all()


def test_rank_orders_best_first_with_top_k(model: CrossEncoder) -> None:
    ranked = model.rank(QUERY, DOCS)
    scores = model.score([(QUERY, doc) for doc in DOCS])
    assert [i for i, _ in ranked] == list(np.argsort(-scores, kind="stable"))
    assert [s for _, s in ranked] == sorted(scores.tolist(), reverse=True)
    assert model.rank(QUERY, DOCS, top_k=2) == ranked[:2]
    assert model.rank(QUERY, DOCS, top_k=0) == []
    with pytest.raises(ValueError):
        model.rank(QUERY, DOCS, top_k=-1)


def test_max_length_per_call_changes_nothing_shared(model: CrossEncoder) -> None:
    doc = " ".join(DOCS * 20)
    full = model.score([(QUERY, doc)])
    cut = model.score([(QUERY, doc)], max_length=24)
    assert full[0] != pytest.approx(cut[0], abs=1e-7)
    assert model.score([(QUERY, doc)])[0] == pytest.approx(full[0], abs=1e-7)
    # a longer max_length than the model's is capped, never an error
    assert model.score([(QUERY, doc)], max_length=100_000)[0] == pytest.approx(full[0], abs=1e-7)
    with pytest.raises(ValueError, match="max_length"):
        model.score([(QUERY, doc)], max_length=3)


def test_threads_with_different_max_lengths_do_not_interfere(model: CrossEncoder) -> None:
    doc = " ".join(DOCS * 30)
    lengths = [16, 32, 64, 128, 256, 512]
    expected = {n: model.score([(QUERY, doc)] * 3, max_length=n) for n in lengths}
    failures: list[str] = []

    def work(n: int) -> None:
        for _ in range(15):
            got = model.score([(QUERY, doc)] * 3, max_length=n)
            if not np.allclose(got, expected[n], atol=1e-6):
                failures.append(f"max_length {n}: {got} != {expected[n]}")

    threads = [threading.Thread(target=work, args=(n,)) for n in lengths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_token_budget_does_not_change_scores(tiny_cross_encoder_dir: Path,
                                             model: CrossEncoder) -> None:
    pairs = [(QUERY, " ".join(DOCS[: 1 + i % 3] * (1 + i))) for i in range(20)]
    small = CrossEncoder.load(tiny_cross_encoder_dir, max_batch_tokens=64)
    np.testing.assert_allclose(small.score(pairs), model.score(pairs), atol=1e-5)


def test_batches_in_parallel_give_the_same_scores_as_one_at_a_time(
        tiny_cross_encoder_dir: Path) -> None:
    # 40 pairs of mixed lengths in 16-token batches: many batches, run by 3 threads at once
    pairs = [(QUERY, " ".join(DOCS[: 1 + i % 3] * (1 + i % 7))) for i in range(40)]
    serial = CrossEncoder.load(tiny_cross_encoder_dir, parallel_runs=1, max_batch_tokens=16)
    parallel = CrossEncoder.load(tiny_cross_encoder_dir, parallel_runs=3, max_batch_tokens=16)
    one_run_all_cores = CrossEncoder.load(tiny_cross_encoder_dir, intra_op_threads=0,
                                          parallel_runs=1, max_batch_tokens=16)
    expected = serial.score(pairs)
    np.testing.assert_array_equal(parallel.score(pairs), expected)
    np.testing.assert_allclose(one_run_all_cores.score(pairs), expected, atol=1e-6)
    np.testing.assert_array_equal(parallel.score(pairs[::-1])[::-1], expected)


def test_parallel_runs_fit_the_cores(tiny_cross_encoder_dir: Path) -> None:
    from crossrank.models.onnx_session import OnnxSession, parallel_runs_for

    cores = os.cpu_count() or 1
    assert parallel_runs_for(1, 0) == cores
    assert parallel_runs_for(0, 0) == 1  # every operator already on all cores
    assert parallel_runs_for(cores * 2, 0) == 1
    assert parallel_runs_for(4, 3) == 3  # an explicit count is kept
    with pytest.raises(ValueError, match="parallel_runs"):
        OnnxSession(tiny_cross_encoder_dir / "model.onnx", parallel_runs=-1)


def test_a_failing_run_reaches_the_caller(tiny_cross_encoder_dir: Path) -> None:
    from crossrank.models.onnx_session import OnnxSession
    from crossrank.models.token_batches import Batch

    session = OnnxSession(tiny_cross_encoder_dir / "model.onnx", parallel_runs=2)
    good = np.ones((1, 4), dtype=np.int64)
    bad = np.full((1, 4), 10**9, dtype=np.int64)  # token ids far past the vocabulary
    batches = [Batch(np.arange(1), ids, np.ones_like(ids), np.zeros_like(ids))
               for ids in (good, bad, good)]
    with pytest.raises(Exception, match=r"(?i)gather|indices"):
        list(session.run_all(batches, "logits"))
    session.close()


def test_registry_close_stops_the_models(tiny_cross_encoder_dir: Path) -> None:
    from crossrank.models import ModelRegistry

    registry = ModelRegistry({"rerank": tiny_cross_encoder_dir}, parallel_runs=2)
    model = registry.cross_encoder("rerank")
    model.score([(QUERY, doc) for doc in DOCS])
    runners = model._session._runners
    assert runners is not None
    registry.close()
    with pytest.raises(RuntimeError, match="shutdown"):
        runners.submit(print)


def test_score_each_gives_every_request_its_scores_alone(model: CrossEncoder) -> None:
    requests = [[(QUERY, doc) for doc in DOCS], [], [(QUERY, DOCS[1] * 40)],
                [(DOCS[0], doc) for doc in DOCS * 3]]
    answered: list[int] = []
    results = model.score_each(requests, lambda index, scores: answered.append(index))
    assert sorted(answered) == [0, 1, 2, 3]
    for pairs, scores in zip(requests, results, strict=True):
        np.testing.assert_array_equal(scores, model.score(pairs))
    assert results[1].shape == (0,)
