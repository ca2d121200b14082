"""The pure parts of `crossrank finetune`: candidate pools, held-out WikiQA metrics, where a
run may start from."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from crossrank.train.data import WikiQAQuestion
from crossrank.train.heldout import held_out, ranking_metrics
from crossrank.train.proxy_mining import Mined
from crossrank.train.student import WEIGHTS_DIR, StartError, weights_dir


def test_the_pool_interleaves_first_stage_and_knn_each_id_once() -> None:
    mined = Mined(first_stage={"q": [("a", 3.0), ("b", 2.0), ("c", 1.0), ("d", 0.5)]},
                  knn={"q": [("b", 0.9), ("e", 0.8)]})
    assert mined.pool("q") == ["a", "b", "e", "c", "d"]
    assert Mined(first_stage={"q": [("a", 1.0)]}).pool("q") == ["a"]
    assert Mined().pool("absent") == []


def test_ranking_metrics_by_hand() -> None:
    # question 1: the right answer ranked second; question 2: two right answers, first and third
    scores = [np.array([0.9, 0.8, 0.1]), np.array([5.0, 3.0, 1.0, 0.0])]
    labels = [[0, 1, 0], [1, 0, 1, 0]]
    got = ranking_metrics(scores, labels)
    ndcg1 = (1 / math.log2(3)) / 1.0
    ndcg2 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert got["mrr"] == pytest.approx((0.5 + 1.0) / 2, abs=1e-4)
    assert got["ndcg@10"] == pytest.approx((ndcg1 + ndcg2) / 2, abs=1e-4)


def test_the_wikiqa_split_is_seeded_and_disjoint() -> None:
    questions = [WikiQAQuestion(f"q{i}", ["y"], ["n"]) for i in range(50)]
    train, held = held_out(questions, 0.2, seed=13)
    again_train, again_held = held_out(questions, 0.2, seed=13)
    assert len(held) == 10 and len(train) == 40
    assert [q.question for q in held] == [q.question for q in again_held]
    assert [q.question for q in train] == [q.question for q in again_train]
    assert {q.question for q in train}.isdisjoint({q.question for q in held})
    assert held != held_out(questions, 0.2, seed=14)[1]


def test_a_run_starts_from_a_hf_directory_or_a_model_that_kept_its_weights(
        tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    assert weights_dir(hf) == hf
    kept = tmp_path / "kept"
    (kept / WEIGHTS_DIR).mkdir(parents=True)
    (kept / "crossrank.json").write_text("{}")
    (kept / WEIGHTS_DIR / "config.json").write_text("{}")
    assert weights_dir(kept) == kept / WEIGHTS_DIR
    onnx_only = tmp_path / "onnx"
    onnx_only.mkdir()
    (onnx_only / "crossrank.json").write_text("{}")
    with pytest.raises(StartError, match="without its PyTorch weights"):
        weights_dir(onnx_only)
    with pytest.raises(StartError, match="not a model directory"):
        weights_dir(tmp_path / "nothing")


def test_the_commands_report_bad_input_as_one_error_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crossrank.cli import app

    runner = CliRunner()
    for command in ("finetune", "train"):
        args = [command, "--policy", "p", "--out", str(tmp_path / "m"), "--dataset",
                str(tmp_path / "absent"), "--proxy", "http://127.0.0.1:9"]
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert "error:" in result.output and "Traceback" not in result.output
    bad = tmp_path / "config.json"
    bad.write_text('{"sed": 1}')
    result = runner.invoke(app, ["finetune", "--policy", "p", "--out", str(tmp_path / "m"),
                                 "--dataset", str(tmp_path), "--config", str(bad)])
    assert result.exit_code == 1 and "unknown training settings" in result.output


def test_a_student_keeps_the_first_layers_of_its_start() -> None:
    from crossrank.train.student import keep_layers, tiny_student

    model = tiny_student(seed=1)
    first = model.bert.encoder.layer[0]
    keep_layers(model, 1)
    assert len(model.bert.encoder.layer) == 1 and model.config.num_hidden_layers == 1
    assert model.bert.encoder.layer[0] is first
    with pytest.raises(StartError, match="cannot keep 3"):
        keep_layers(model, 3)


def test_a_model_teacher_needs_its_model_named() -> None:
    from crossrank.train.config import TrainConfig

    with pytest.raises(ValueError, match="teacher_model go together"):
        TrainConfig(teacher="model")
    with pytest.raises(ValueError, match="teacher_model go together"):
        TrainConfig(teacher_model="onnx_models/x")
    with pytest.raises(ValueError, match="student_layers"):
        TrainConfig(student_layers=0)


def test_a_cross_encoder_teacher_gives_the_exported_models_raw_scores(
        tiny_cross_encoder_dir: Path) -> None:
    from crossrank.models import CrossEncoder
    from crossrank.train.teacher import cross_encoder_teacher

    pairs = [("a query", "a document"), ("another query", "a longer document here")]
    teach = cross_encoder_teacher(tiny_cross_encoder_dir, 64)
    expected = CrossEncoder.load(tiny_cross_encoder_dir).raw_scores(pairs, max_length=64)
    assert teach(pairs) == [float(v) for v in expected]
