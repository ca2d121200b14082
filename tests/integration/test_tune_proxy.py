"""`crossrank tune` end to end: the tiny judged fixture indexed through the real proxy, each
query's window collected through it with the real (tiny) model, every candidate scored, the
choice cross-validated, the report written, and the policy and a model card updated."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from math import log2
from pathlib import Path

import httpx
import orjson
import pytest

from crossrank.eval.evaluation import run_evaluation
from crossrank.eval.options import EvalOptions
from crossrank.models import Manifest
from crossrank.tune.options import TuneOptions
from crossrank.tune.run import run_tune

pytestmark = pytest.mark.integration

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "eval_tiny"
QUERY = '{"match": {"text": "{{query}}"}}'


@pytest.fixture
def tuned_index(proxy_url: str, admin_token: str, index_name: str,
                tmp_path: Path) -> Iterator[str]:
    """The tiny collection indexed (and its eval policy put) by `crossrank eval`."""
    run_evaluation(EvalOptions(dataset=TINY, proxy=proxy_url, admin_token=admin_token,
                               index=index_name, out=tmp_path / "eval", windows=(3,),
                               warmup=0, progress=False, arms=("bm25", "bm25+rerank")))
    yield index_name
    httpx.delete(f"{proxy_url}/_crossrank/policies/{index_name}-eval",
                 headers={"x-crossrank-admin-token": admin_token}, timeout=30)


def test_tune_through_the_proxy(proxy_url: str, admin_token: str, tuned_index: str,
                                tiny_cross_encoder_dir: Path, tmp_path: Path) -> None:
    card = tmp_path / "model"
    shutil.copytree(tiny_cross_encoder_dir, card)
    options = TuneOptions(f"{tuned_index}-eval", dataset=TINY, query=QUERY, windows=(1, 3),
                          folds=3, proxy=proxy_url, admin_token=admin_token, apply=True,
                          write_card=card, out=tmp_path / "tune", progress=False)
    report, paths = run_tune(options)

    assert report.queries == 3 and report.first_stage == "bm25"
    names = [c.name for c in report.candidates]
    assert names[0] == "off" and "replace@1" in names and "replace@3" in names
    assert len(names) == 1 + 2 * (1 + 3 * 19)  # off; per window: replace, 3 norms x 19 alphas
    off = report.candidates[0]
    # reranking off is BM25's own ranking (worked out by hand, as in test_eval_proxy.py)
    q1 = (1 / log2(3) + 2 / log2(4)) / (2 + 1 / log2(3))
    q2 = (1 / log2(3)) / (1 + 1 / log2(3))
    assert off.ndcg == pytest.approx((q1 + q2 + 1.0) / 3)
    cv = report.cross_validation
    assert len(cv["chosen_per_fold"]) == 3 and cv["wins"] + cv["ties"] + cv["losses"] == 3
    # three queries cannot show a confident gain: tune says reranking off
    assert report.recommended.name == "off"

    written = orjson.loads(paths["json"].read_bytes())
    assert written["recommended"]["policy_fields"] == {"enabled": False}
    assert "Recommended: off" in paths["markdown"].read_text()
    assert paths["plot"].stat().st_size > 1000
    policy = httpx.get(f"{proxy_url}/_crossrank/policies/{tuned_index}-eval", timeout=30)
    assert policy.json()["enabled"] is False  # --apply
    recommended = Manifest.read(card).recommended["bm25"]
    assert recommended.rerank is False and "crossrank tune" in (recommended.measured or "")
    Manifest.read(card).verify(card)  # the card changed, the model files did not
