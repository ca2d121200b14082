"""export_model refuses what it cannot do, early, with a message that says what to change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from crossrank.models import CrossEncoder, ExportError, Manifest, export_model
from crossrank.models.source import inspect_source

from model_fixtures import minilm_dir


def test_hub_id_is_refused_without_a_download(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot download from the Hugging Face Hub here"):
        export_model("cross-encoder/ms-marco-MiniLM-L-6-v2", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_file_is_not_a_model_directory(tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"")
    with pytest.raises(ExportError, match="pass the model's directory"):
        export_model(file, tmp_path / "out")


def test_bi_encoder_is_not_a_cross_encoder(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not a sequence-classification model"):
        export_model(minilm_dir(), tmp_path / "out", kind="cross-encoder")


def test_more_than_two_labels_needs_a_label(model_factory: Any, tmp_path: Path) -> None:
    source = model_factory.source("bert-3label")
    with pytest.raises(ExportError, match=r"3 labels.*pass label="):
        export_model(source, tmp_path / "out")
    with pytest.raises(ExportError, match="out of range"):
        export_model(source, tmp_path / "out", label=3)
    head = inspect_source(source, kind=None, label=2, activation=None, max_length=None).score
    assert head is not None and (head.label, head.reduce) == (2, "logit")


def test_chosen_label_of_a_three_label_model_is_scored(model_factory: Any, tmp_path: Path) -> None:
    manifest = export_model(model_factory.source("bert-3label"), tmp_path / "out", label=2,
                            activation="none")
    assert manifest.score is not None
    assert (manifest.score.num_labels, manifest.score.label) == (3, 2)
    assert manifest.parity is not None and manifest.parity.max_abs_diff < 1e-4


def test_missing_tokenizer(model_factory: Any, tmp_path: Path) -> None:
    source = tmp_path / "no-tokenizer"
    shutil.copytree(model_factory.source("bert"), source)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        (source / name).unlink(missing_ok=True)
    with pytest.raises(ExportError, match="has no tokenizer"):
        export_model(source, tmp_path / "out")


def test_missing_weights_and_config(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"config\.json"):
        export_model(tmp_path, tmp_path / "out")
    (tmp_path / "config.json").write_text(json.dumps(
        {"architectures": ["BertForSequenceClassification"], "model_type": "bert"}))
    shutil.copy(minilm_dir() / "tokenizer.json", tmp_path)
    with pytest.raises(ExportError, match="no weights"):
        export_model(tmp_path, tmp_path / "out")


def test_max_length_beyond_the_positions(model_factory: Any, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="exceeds the model's 512 positions"):
        export_model(model_factory.source("xlmr"), tmp_path / "out", max_length=514)


def test_out_dir_with_another_model_is_refused_unless_forced(model_factory: Any,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(model_factory.exported("electra"), out)
    with pytest.raises(ExportError, match="already holds a different model"):
        export_model(model_factory.source("bert"), out)
    assert Manifest.read(out).architecture == "ElectraForSequenceClassification"
    manifest = export_model(model_factory.source("bert"), out, force=True)
    assert Manifest.read(out) == manifest
    assert manifest.architecture == "BertForSequenceClassification"
    CrossEncoder.load(out)  # checksums match what is on disk


def test_same_model_can_be_re_exported(model_factory: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(model_factory.exported("bert"), out)
    manifest = export_model(model_factory.source("bert"), out, quantize="int8")
    assert manifest.quantization is not None
    assert sorted(p.name for p in out.iterdir()) == ["crossrank.json", "model.onnx",
                                                     "tokenizer.json"]
    CrossEncoder.load(out)


def test_modified_export_or_foreign_files_are_refused(model_factory: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(model_factory.exported("bert"), out)
    (out / "tokenizer.json").write_text("{}")
    with pytest.raises(ExportError, match="modified after export"):
        export_model(model_factory.source("bert"), out)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="holds no readable crossrank model"):
        export_model(model_factory.source("bert"), other)


def test_embedder_needs_the_sentence_transformers_layout(model_factory: Any,
                                                         tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"modules\.json"):
        export_model(model_factory.source("bert"), tmp_path / "out", kind="embedder")
    source = tmp_path / "dense"
    shutil.copytree(minilm_dir(), source)
    modules = json.loads((source / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense",
                    "type": "sentence_transformers.models.Dense"})
    (source / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ExportError, match="unsupported sentence-transformers module"):
        export_model(source, tmp_path / "out")
