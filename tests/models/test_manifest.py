"""crossrank.json: validated on read, checked against the files it names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from crossrank.models import CrossEncoder, Manifest, ManifestError


def test_round_trip(tiny_cross_encoder_dir: Path, tmp_path: Path) -> None:
    manifest = Manifest.read(tiny_cross_encoder_dir)
    manifest.write(tmp_path)
    assert Manifest.read(tmp_path / "crossrank.json") == manifest
    data = json.loads((tmp_path / "crossrank.json").read_text())
    assert data["format_version"] == 1 and data["kind"] == "cross-encoder"
    assert set(data["checksums"]) == {"model.onnx", "tokenizer.json"}
    assert data["source"]["weights_sha256"] and data["exported_with"]["onnxruntime"]


def test_changed_model_file_is_refused_on_load(tiny_cross_encoder_dir: Path,
                                               tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_cross_encoder_dir, copy)
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ManifestError, match="does not match the manifest"):
        CrossEncoder.load(copy)
    (copy / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        CrossEncoder.load(copy)


@pytest.mark.parametrize("change, message", [
    ({"format_version": 2}, "format_version"),
    ({"kind": "reranker"}, "kind"),
    ({"score": None}, "needs 'score'"),
    ({"model_file": "../elsewhere.onnx"}, "file name inside the model directory"),
    ({"checksums": {"model.onnx": "abc"}}, "sha256"),
    ({"unexpected": 1}, "unexpected"),
])
def test_invalid_manifests(tiny_cross_encoder_dir: Path, tmp_path: Path,
                           change: dict[str, object], message: str) -> None:
    data = json.loads((tiny_cross_encoder_dir / "crossrank.json").read_text())
    data.update(change)
    (tmp_path / "crossrank.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=message):
        Manifest.read(tmp_path)


def test_not_json_and_missing(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        Manifest.read(tmp_path)
    (tmp_path / "crossrank.json").write_text("{")
    with pytest.raises(ManifestError, match="invalid manifest"):
        Manifest.read(tmp_path)
