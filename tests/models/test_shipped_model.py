"""The models shipped in onnx_models/ (the default, and the 3-layer student distilled from it
for the cascade): intact, quantised for this CPU at load, and ranking the judged abstract of
real SciFact training claims above the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossrank.models import CrossEncoder, Manifest
from crossrank.models.manifest import shown_path
from crossrank.models.quantize import cpu_isa, int8_settings
from crossrank.models.sample_texts import join_title, scifact_dir

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "onnx_models" / "crossrank-minilm-l6-scifact"
STUDENT = REPO / "onnx_models" / "crossrank-minilm-l3-scifact"
SHIPPED = pytest.mark.parametrize("directory", [DEFAULT, STUDENT], ids=lambda d: d.name)


@SHIPPED
def test_a_shipped_model_has_its_float_graph_and_weights(directory: Path) -> None:
    manifest = Manifest.read(directory)
    manifest.verify(directory)
    assert manifest.int8_on_load is not None and manifest.quantization is None
    assert (directory / "pytorch" / "model.safetensors").is_file()  # to fine-tune, re-export


@SHIPPED
def test_a_shipped_model_records_no_build_machine_paths(directory: Path) -> None:
    """Provenance names paths inside the checkout (or dataset names), not where it was built."""
    for name in ("crossrank.json", "calibration.json", "README.md"):
        text = (directory / name).read_text(encoding="utf-8")
        assert "/work/" not in text and "/tmp/" not in text and "/home/" not in text, name


def test_provenance_paths_are_relative_inside_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets" / "scifact").mkdir(parents=True)
    assert shown_path(tmp_path / "datasets" / "scifact") == "datasets/scifact"
    assert shown_path("datasets/scifact") == "datasets/scifact"
    (tmp_path / "shared").mkdir()
    monkeypatch.chdir(tmp_path / "datasets")
    assert shown_path(tmp_path / "shared" / "wikiqa.jsonl") == "../shared/wikiqa.jsonl"
    assert shown_path("/opt/elsewhere/model") == "/opt/elsewhere/model"


def test_the_student_is_smaller_than_the_default() -> None:
    layers = [json.loads((d / "pytorch" / "config.json").read_text())["num_hidden_layers"]
              for d in (DEFAULT, STUDENT)]
    assert layers == [6, 3]


@SHIPPED
def test_a_shipped_model_runs_int8_for_this_cpu_and_ranks_judged_abstracts_first(
        directory: Path) -> None:
    data = scifact_dir()
    if data is None:
        pytest.skip("SciFact is not here (datasets/scifact)")
    model = CrossEncoder.load(directory)
    assert model.quantization == int8_settings(cpu_isa())
    corpus = {}
    with (data / "corpus.jsonl").open() as lines:
        for line in lines:
            doc = json.loads(line)
            corpus[doc["_id"]] = join_title(doc.get("title", ""), doc["text"])
    queries = {}
    with (data / "queries.jsonl").open() as lines:
        for line in lines:
            query = json.loads(line)
            queries[query["_id"]] = query["text"]
    judged: dict[str, str] = {}
    for row in (data / "qrels_train.tsv").read_text().splitlines()[1:40]:
        query_id, doc_id, _ = row.split("\t")
        judged.setdefault(query_id, doc_id)
    others = sorted(corpus)[:9]
    firsts = 0
    for query_id, doc_id in judged.items():
        candidates = [doc_id] + [d for d in others if d != doc_id][:8]
        scores = model.score([(queries[query_id], corpus[d]) for d in candidates],
                             max_length=128)
        firsts += int(scores.argmax() == 0)
    assert firsts >= 0.8 * len(judged), (firsts, len(judged))


def test_the_default_is_the_default_model_not_the_student_beside_it(tmp_path: Path) -> None:
    """`crossrank serve --models-dir onnx_models` names the 6-layer model `default`: a policy
    that names no model must not get the student because its name sorts first."""
    from crossrank.config import Settings
    from crossrank.server import resolve_models

    models = resolve_models(Settings(), REPO / "onnx_models")
    assert models["default"] == DEFAULT
    assert models["crossrank-minilm-l3-scifact"] == STUDENT
    # without a model made by the default recipe: the first cross-encoder by name
    for name in ("b-student", "a-other"):
        (tmp_path / name).mkdir()
        manifest = json.loads((STUDENT / "crossrank.json").read_text())
        (tmp_path / name / "crossrank.json").write_text(json.dumps(manifest))
    assert resolve_models(Settings(), tmp_path)["default"] == tmp_path / "a-other"
