"""`crossrank finetune` end to end on a tiny model: judgments -> hard negatives mined from a real
index through the real proxy -> training -> fp16 weights + int8 ONNX + card -> the new model
served by a second proxy, its scores through ``/_crossrank/rerank`` those of the ONNX graph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from safetensors import safe_open

from crossrank.eval.evaluation import run_evaluation
from crossrank.eval.options import EvalOptions
from crossrank.models import CrossEncoder, Manifest
from crossrank.models.quantize import cpu_isa, int8_settings
from crossrank.server import build_app
from crossrank.train.config import TrainConfig
from crossrank.train.finetune import FinetuneOptions, run_finetune
from crossrank.train.student import WEIGHTS_DIR, StartError, load_student

from proxy_fixtures import ServedProxy, proxy_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORDS = ["kalu", "rono", "mefo", "tiva", "suma", "pelo", "naro", "vike", "dosa", "lemi",
         "goru", "fane"]


def _dataset(root: Path) -> Path:
    """Twelve topics: each query names one word; its relevant document repeats it, the
    others mention it once among other words (so BM25 finds them: hard negatives)."""
    root.mkdir(parents=True)
    docs, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for i, word in enumerate(WORDS):
        other = WORDS[(i + 1) % len(WORDS)]
        docs.append({"_id": f"r{i}", "title": f"On {word}", "text": f"{word} {word} {word} "
                     f"is what this report is about, {word} above all."})
        docs.append({"_id": f"n{i}", "title": f"On {other}", "text": f"{other} {other} and "
                     f"once {word}, in passing."})
        queries.append({"_id": f"q{i}", "text": f"{word} report"})
        qrels += [f"q{i}\tr{i}\t1", f"q{i}\tn{i}\t0"]
    (root / "corpus.jsonl").write_bytes(b"\n".join(orjson.dumps(d) for d in docs))
    (root / "queries.jsonl").write_bytes(b"\n".join(orjson.dumps(q) for q in queries))
    (root / "qrels.tsv").write_text("\n".join(qrels) + "\n")
    return root


@pytest.fixture
def judged_index(proxy_url: str, admin_token: str, index_name: str,
                 tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The collection indexed, and its policy put, by `crossrank eval` through the proxy."""
    dataset = _dataset(tmp_path / "judged")
    run_evaluation(EvalOptions(dataset=dataset, proxy=proxy_url, admin_token=admin_token,
                               index=index_name, out=tmp_path / "eval", windows=(3,),
                               warmup=0, progress=False, arms=("bm25", "bm25+rerank")))
    yield dataset, f"{index_name}-eval"
    httpx.delete(f"{proxy_url}/_crossrank/policies/{index_name}-eval",
                 headers={"x-crossrank-admin-token": admin_token}, timeout=30)


def test_finetune_a_tiny_cross_encoder_through_the_proxy(
        proxy_url: str, admin_token: str, opensearch_url: str, judged_index: tuple[Path, str],
        model_factory: object, tmp_path: Path) -> None:
    dataset, policy = judged_index
    start = model_factory.source("bert")  # type: ignore[attr-defined]
    out = tmp_path / "finetuned"
    config = TrainConfig(threads=1, bf16=False, epochs=3, negatives=3, val_fraction=0.25,
                         groups_per_step=4, lr=5e-4, max_length=32, val_window=5,
                         time_budget_s=120.0)
    done = run_finetune(FinetuneOptions(
        policy=policy, out=out, dataset=dataset, start=start, proxy=proxy_url,
        admin_token=admin_token, work_dir=tmp_path / "work", config=config, progress=False))

    record = done.training
    assert done.start.cross_encoder and done.start.directory == start
    assert record["data"]["train_queries"] == 9 and record["data"]["held_out_queries"] == 3
    assert record["data"]["groups"] == {"judged": 27}  # 9 queries x 1 relevant x 3 epochs
    assert record["data"]["judged_missing_from_index"] == 0
    history = record["validation"]["history"]
    assert history[0]["step"] == 0  # the start, which a checkpoint must beat to be kept
    assert record["validation"]["best"]["selection"] == max(
        max(h["rerank"], h["best_blend"]) for h in history)

    # what was shipped: fp16 weights, their float graph to be made int8 for each CPU at load
    # (this one's settings when loaded here), the record and the scoring
    with safe_open(str(out / WEIGHTS_DIR / "model.safetensors"), "pt") as weights:
        tensor = weights.get_tensor(next(iter(weights.keys())))
        assert str(tensor.dtype) == "torch.float16"
    manifest = Manifest.read(out)
    manifest.verify(out)
    assert manifest.int8_on_load is not None and manifest.quantization is None
    assert CrossEncoder.load(out).quantization == int8_settings(cpu_isa())
    assert manifest.training is not None and manifest.training["recipe"] == "finetune"
    scoring = manifest.recommended["bm25"]
    assert "crossrank finetune" in (scoring.measured or "")
    assert "fine-tuned" in (out / "README.md").read_text()

    # a later fine-tune starts from the kept weights of this very directory
    _, _, again = load_student(out, seed=0)
    assert again.directory == out / WEIGHTS_DIR and again.cross_encoder

    # the new model, served: the proxy's raw scores are the graph's
    settings = proxy_settings(opensearch_url, out)
    served = ServedProxy(build_app(settings), settings.port).start()
    try:
        documents = ["kalu kalu kalu is what this report is about", "rono and once kalu"]
        answer = httpx.post(f"{served.url}/_crossrank/rerank", json={
            "query": "kalu report", "documents": documents, "return_documents": False,
            "raw_scores": True}, timeout=60)
        assert answer.status_code == 200, answer.text
        by_index = {r["index"]: r["raw_score"] for r in answer.json()["results"]}
    finally:
        served.stop()
    local = CrossEncoder.load(out).score([("kalu report", d) for d in documents])
    np.testing.assert_allclose([by_index[0], by_index[1]], local, rtol=1e-5, atol=1e-5)


def test_an_onnx_only_model_cannot_be_fine_tuned(tiny_cross_encoder_dir: Path) -> None:
    with pytest.raises(StartError, match="without its PyTorch weights"):
        load_student(tiny_cross_encoder_dir, seed=0)
