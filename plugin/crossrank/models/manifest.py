"""``crossrank.json``: what a model directory holds and how its outputs become scores.

The manifest is the one description of an exported model that the runtime trusts. It is
written by :func:`crossrank.models.export.export_model` and checked on every load: the files it
names must exist and match their sha256 checksums.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crossrank.models.errors import ManifestError

MANIFEST_NAME = "crossrank.json"
FORMAT_VERSION: Literal[1] = 1

Kind = Literal["cross-encoder", "embedder"]
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def shown_path(path: str | Path) -> str:
    """A path as provenance records it: relative to the working directory when the two share
    a top-level directory (``datasets/scifact``, ``../shared/datasets/...``), so that a model
    built in a checkout does not record the build machine's layout; else as given."""
    resolved, here = Path(path).resolve(), Path.cwd().resolve()
    if os.path.commonpath([resolved, here]) == resolved.anchor:
        return str(path)
    return Path(os.path.relpath(resolved, here)).as_posix()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where the weights came from: a local path, the hub commit when the path was a hub
    snapshot, and a hash of the weight files (the model's identity, wherever it is copied)."""

    path: str
    revision: str | None = None
    weights_sha256: str | None = None


class ScoreHead(_Strict):
    """How a cross-encoder's logits become one score per pair.

    ``reduce="logit"``: ``logits[:, label]``. ``reduce="log_odds"`` (two-label models only):
    ``logits[:, label] - logits[:, 1 - label]``, whose sigmoid is the softmax probability of
    ``label``. ``activation`` is applied last.
    """

    num_labels: int = Field(ge=1)
    label: int = Field(ge=0)
    reduce: Literal["logit", "log_odds"]
    activation: Literal["none", "sigmoid"]

    @model_validator(mode="after")
    def _check(self) -> ScoreHead:
        if self.label >= self.num_labels:
            raise ValueError(f"label {self.label} out of range for {self.num_labels} labels")
        if self.reduce == "log_odds" and self.num_labels != 2:
            raise ValueError("reduce 'log_odds' needs exactly two labels")
        return self


class Pooling(_Strict):
    """How an embedder's token vectors become one vector per text."""

    mode: Literal["mean", "cls", "max"]
    normalize: bool
    dimension: int = Field(ge=1)


class Quantization(_Strict):
    method: Literal["dynamic"] = "dynamic"
    weights: Literal["int8", "uint8"]
    activations: Literal["int8", "uint8"]
    per_channel: bool
    reduce_range: bool
    isa: str
    """The CPU instruction set the settings were chosen for (avx512_vnni, avx512, avx2, arm64)."""
    fp32_nodes: tuple[str, ...] = ()
    """MatMul nodes left in fp32 on purpose (``--int8-keep-fp32``), for accuracy."""
    smooth_alpha: float | None = None
    """Activation smoothing applied before quantising (models/smoothing.py), its migration
    strength; None when the graph was quantised as it was."""


class Int8OnLoad(_Strict):
    """The shipped graph is float (weights stored fp16); each machine quantises it for its own
    instruction set at first load (models/local_int8.py) with ``quantize.int8_settings``."""

    fp32_nodes: tuple[str, ...] = ()
    """MatMul nodes left in fp32, as ``Quantization.fp32_nodes``."""
    calibration: str | None = None
    """The file of activation maxima from sample pairs (``calibration.json``) that lets a CPU
    whose int8 settings smooth do so; None: quantised without smoothing everywhere."""


class Parity(_Strict):
    """Agreement of the exported graph, run by the crossrank runtime, with the PyTorch model.

    Cross-encoders: ``queries`` queries with ``candidates`` candidates each; ``max_abs_diff`` is
    over raw scores (before the activation); ``spearman`` and ``top10_overlap`` are means over
    the queries. Embedders: ``max_abs_diff`` over vector components, ``min_cosine`` over texts.
    """

    reference: str
    data: str
    max_length: int
    texts: int
    max_abs_diff: float
    queries: int | None = None
    candidates: int | None = None
    spearman: float | None = None
    top10_overlap: float | None = None
    min_cosine: float | None = None


FirstStageKind = Literal["bm25", "knn", "hybrid"]
FIRST_STAGE_KINDS: tuple[FirstStageKind, ...] = ("bm25", "knn", "hybrid")


class Scoring(_Strict):
    """How to use a cross-encoder over one kind of first stage: the settings a policy gets
    when it says nothing about scoring (the model card's recommendation), and the settings a
    plan resolves to (``crossrank.search.scoring``).

    ``rerank: false`` advises against reranking that first stage at all (the model did not
    beat it on the judgments the card was measured on); ``?rerank=true`` still forces it.
    ``score_mode: replace`` makes ``_score`` the reranker's own score; ``blend`` fuses it with
    the first-stage signals, ``alpha`` on the reranker (``crossrank.fusion``).
    ``normalization`` names one of ``crossrank.fusion.NORMALIZATIONS``.
    """

    rerank: bool = True
    score_mode: Literal["replace", "blend"] = "replace"
    blend_alpha: float = Field(0.5, ge=0.0, le=1.0)
    normalization: str = "min_max"
    window: int = Field(50, ge=1, le=10_000)
    measured: str | None = None
    """Where the recommendation comes from (judgments, metric, result), for people."""


class Manifest(_Strict):
    format_version: Literal[1] = FORMAT_VERSION
    kind: Kind
    model_file: str = "model.onnx"
    tokenizer_file: str = "tokenizer.json"
    source: Source
    architecture: str
    model_type: str
    max_length: int = Field(ge=4)
    input_names: tuple[str, ...]
    output_name: str
    pad_token_id: int = Field(ge=0)
    score: ScoreHead | None = None
    pooling: Pooling | None = None
    optimization: Literal["O1", "O2", "O3"] | None = None
    last_layer_rows: Literal["all", "first"] = "all"
    """``first``: the graph's last layer computes only the row the head reads (models/trim.py)."""
    quantization: Quantization | None = None
    """The int8 settings the shipped graph was made with (None: a float graph)."""
    int8_on_load: Int8OnLoad | None = None
    """Set when the float graph is to be quantised for the local CPU when it is loaded."""
    checksums: dict[str, str]
    parity: Parity | None = None
    exported_with: dict[str, str] = Field(default_factory=dict)
    training: dict[str, Any] | None = None
    """Free-form record of how the weights were trained, for models crossrank trained itself."""
    recommended: dict[FirstStageKind, Scoring] = Field(default_factory=dict)
    """The model card's scoring per kind of first stage; a policy that says nothing about
    scoring uses it (a kind not listed gets the policy defaults)."""

    @field_validator("model_file", "tokenizer_file")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if not _PLAIN_NAME.match(value):
            raise ValueError(f"must be a file name inside the model directory, got {value!r}")
        return value

    @field_validator("checksums")
    @classmethod
    def _check_checksums(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if not _PLAIN_NAME.match(name):
                raise ValueError(f"checksum for {name!r}: not a file name in the directory")
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"checksum for {name!r} is not a sha256 hex digest")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> Manifest:
        if self.kind == "cross-encoder" and self.score is None:
            raise ValueError("a cross-encoder manifest needs 'score'")
        if self.kind == "embedder" and self.pooling is None:
            raise ValueError("an embedder manifest needs 'pooling'")
        if "input_ids" not in self.input_names or "attention_mask" not in self.input_names:
            raise ValueError("input_names must include input_ids and attention_mask")
        missing = {self.model_file, self.tokenizer_file} - set(self.checksums)
        if missing:
            raise ValueError(f"no checksum for {sorted(missing)}")
        calibration = self.int8_on_load.calibration if self.int8_on_load else None
        if calibration is not None and calibration not in self.checksums:
            raise ValueError(f"no checksum for the calibration file {calibration!r}")
        if self.int8_on_load is not None and self.quantization is not None:
            raise ValueError("int8_on_load needs a float graph, but 'quantization' says the "
                             "graph is already int8")
        return self

    @property
    def uses_token_type_ids(self) -> bool:
        return "token_type_ids" in self.input_names

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read a manifest from a model directory (or the ``crossrank.json`` file itself)."""
        file = path / MANIFEST_NAME if path.is_dir() else path
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ManifestError(f"{file}: not found; is {path} an exported crossrank model "
                                "(`crossrank export`)?") from None
        except OSError as exc:
            raise ManifestError(f"{file}: cannot read: {exc}") from exc
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ManifestError(f"{file}: invalid manifest: {exc}") from exc

    def write(self, directory: Path) -> Path:
        file = directory / MANIFEST_NAME
        # a full last layer is left unsaid, so crossrank versions that predate the field
        # still read the manifests of models it does not concern
        exclude: dict[str, Any] = {}
        if self.last_layer_rows == "all":
            exclude["last_layer_rows"] = True
        if self.quantization is not None and not self.quantization.fp32_nodes:
            exclude["quantization"] = {"fp32_nodes"}
        if not self.recommended:
            exclude["recommended"] = True
        if self.int8_on_load is None:
            exclude["int8_on_load"] = True
        file.write_text(self.model_dump_json(indent=2, exclude=exclude or None) + "\n",
                        encoding="utf-8")
        return file

    def verify(self, directory: Path) -> None:
        """Check that every file the manifest names exists and matches its checksum."""
        for name, expected in sorted(self.checksums.items()):
            file = directory / name
            if not file.is_file():
                raise ManifestError(f"{file}: missing (named in {directory / MANIFEST_NAME})")
            actual = sha256_file(file)
            if actual != expected:
                raise ManifestError(f"{file}: sha256 {actual} does not match the manifest's "
                                    f"{expected}; the directory was modified after export")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
