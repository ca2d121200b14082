"""The last layer of an exported cross-encoder computes only the row its head reads."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from crossrank.models import CrossEncoder, Manifest
from crossrank.models.errors import ManifestError
from crossrank.models.parity import spearman
from crossrank.models.sample_texts import pair_sample
from crossrank.models.trim import trim_last_layer, trim_model_dir


def last_ffn_rows(directory: Path, pairs: list[tuple[str, str]]) -> int:
    """Rows (tokens per sequence) the last layer's feed-forward block computes."""
    model = onnx.load(str(directory / "model.onnx"))
    ffn = [node for node in model.graph.node
           if "/intermediate/" in node.name and node.op_type in ("MatMul", "MatMulInteger",
                                                                   "DynamicQuantizeMatMul")]
    last = max(ffn, key=lambda node: int(node.name.split("/layer.")[1].split("/")[0]))
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(last.output[0]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    encoder = CrossEncoder.load(directory)
    encodings = encoder._tokenizer.encode_pairs(pairs, 64)
    width = max(len(e.ids) for e in encodings)
    feeds = {"input_ids": np.zeros((len(pairs), width), np.int64),
             "attention_mask": np.zeros((len(pairs), width), np.int64),
             "token_type_ids": np.zeros((len(pairs), width), np.int64)}
    for row, encoding in enumerate(encodings):
        feeds["input_ids"][row, :len(encoding.ids)] = encoding.ids
        feeds["attention_mask"][row, :len(encoding.ids)] = 1
    names = {node.name for node in session.get_inputs()}
    (hidden,) = session.run([last.output[0]], {k: v for k, v in feeds.items() if k in names})
    assert hidden.shape[0] == len(pairs) and width > 8
    return int(hidden.shape[1])


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    sample = pair_sample(queries=1, candidates=12, seed=3)
    return [(sample.queries[0], doc) for doc in sample.candidates[0]]


@pytest.mark.parametrize("name", ["bert", "electra", "xlmr"])
def test_trimmed_graph_scores_like_the_full_one_on_one_row(
        name: str, model_factory: Any, pairs: list[tuple[str, str]]) -> None:
    trimmed_dir = model_factory.exported(name)
    full_dir = model_factory.exported(name, trim_last_layer=False)
    assert Manifest.read(trimmed_dir).last_layer_rows == "first"
    assert Manifest.read(full_dir).last_layer_rows == "all"
    assert last_ffn_rows(trimmed_dir, pairs) == 1
    assert last_ffn_rows(full_dir, pairs) > 1
    trimmed, full = CrossEncoder.load(trimmed_dir), CrossEncoder.load(full_dir)
    np.testing.assert_allclose(trimmed.raw_scores(pairs, max_length=64),
                               full.raw_scores(pairs, max_length=64), atol=1e-5)


def test_int8_is_quantised_after_the_cut(model_factory: Any,
                                         pairs: list[tuple[str, str]]) -> None:
    directory = model_factory.exported("bert-64", quantize="int8")
    manifest = Manifest.read(directory)
    assert manifest.last_layer_rows == "first" and manifest.quantization is not None
    assert last_ffn_rows(directory, pairs) == 1


def test_optimised_graphs_and_embedders_are_left_whole(model_factory: Any,
                                                       minilm_embedder_dir: Path) -> None:
    assert Manifest.read(model_factory.exported("bert-64", quantize="int8",
                                                optimize="O2")).last_layer_rows == "all"
    assert Manifest.read(minilm_embedder_dir).last_layer_rows == "all"
    # an embedder's graph outputs every row: no query projection feeds a classifier head
    # row, but its layers are named alike; trim_last_layer is only ever called for
    # cross-encoders, and on a graph without the layer layout it changes nothing
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"], name="id")],
                                   "plain", [onnx.helper.make_empty_tensor_value_info("x")],
                                   [onnx.helper.make_empty_tensor_value_info("y")])
    model = onnx.helper.make_model(graph)
    before = model.SerializeToString()
    assert not trim_last_layer(model)
    assert model.SerializeToString() == before


@pytest.mark.parametrize("options", [{}, {"quantize": "int8"}])
def test_an_existing_export_is_trimmed_in_place(options: dict[str, str], model_factory: Any,
                                                pairs: list[tuple[str, str]],
                                                tmp_path: Path) -> None:
    directory = tmp_path / "model"
    shutil.copytree(model_factory.exported("bert-64", trim_last_layer=False, **options),
                    directory)
    before = CrossEncoder.load(directory).raw_scores(pairs)
    report = trim_model_dir(directory)
    manifest = Manifest.read(directory)
    manifest.verify(directory)  # the new graph's checksum is recorded
    assert manifest.last_layer_rows == "first"
    assert last_ffn_rows(directory, pairs) == 1
    after = CrossEncoder.load(directory).raw_scores(pairs)
    if options:  # int8: the last layer's activation scales now come from one row
        assert report.spearman >= 0.99 and spearman(before, after) > 0.95
    else:
        assert report.max_abs_diff < 1e-4
        np.testing.assert_allclose(after, before, atol=1e-4)
    with pytest.raises(ManifestError, match="already cut"):
        trim_model_dir(directory)


def test_only_cross_encoders_are_trimmed(minilm_embedder_dir: Path) -> None:
    with pytest.raises(ManifestError, match="not a cross-encoder"):
        trim_model_dir(minilm_embedder_dir)


def test_trim_command(model_factory: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crossrank.cli import app

    directory = tmp_path / "model"
    shutil.copytree(model_factory.exported("bert", trim_last_layer=False), directory)
    runner = CliRunner()
    done = runner.invoke(app, ["trim", str(directory)])
    assert done.exit_code == 0, done.output
    assert "trimmed" in done.output and "max |diff|" in done.output
    again = runner.invoke(app, ["trim", str(directory)])
    assert again.exit_code == 1 and "already cut" in again.output


def test_export_keeps_the_full_graph_when_the_cut_one_disagrees(
        model_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from crossrank.models import export_model, trim

    monkeypatch.setattr(trim, "TRIM_TOLERANCE", -1.0)  # no graph can be that close
    manifest = export_model(model_factory.source("bert"), tmp_path / "model")
    assert manifest.last_layer_rows == "all"
    assert "last layer left whole" in caplog.text
    assert "last_layer_rows" not in (tmp_path / "model" / "crossrank.json").read_text()
