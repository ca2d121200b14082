"""What an export starts from: a local Hugging Face model directory, checked before any work.

Everything here reads JSON files and hashes weights; nothing loads the model, so a wrong
source fails in milliseconds with a message that says what to change.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from crossrank.models.errors import ExportError
from crossrank.models.manifest import Kind, Pooling, ScoreHead, Source, sha256_file, shown_path

Activation = Literal["none", "sigmoid"]

# Models whose position ids start after the padding index (fairseq heritage): they use
# max_position_embeddings - (pad_token_id + 1) positions.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer",
                     "data2vec-text", "mpnet", "ibert"}
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
_ST_TRANSFORMER = "sentence_transformers.models.Transformer"
_ST_POOLING = "sentence_transformers.models.Pooling"
_ST_NORMALIZE = "sentence_transformers.models.Normalize"
_SUPPORTED_POOLING = ("mean", "cls", "max")
# files a fast tokenizer can be loaded or converted from
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                    "spiece.model", "tokenizer.model")


@dataclass(frozen=True)
class SourceModel:
    """A checked export source."""

    root: Path
    """The directory given (a sentence-transformers model's root for embedders)."""
    model_dir: Path
    """Where the Hugging Face weights and config.json are (root, or an ST module path)."""
    kind: Kind
    config: dict[str, Any]
    source: Source
    max_length: int
    score: ScoreHead | None
    pooling: Pooling | None

    @property
    def architecture(self) -> str:
        return str((self.config.get("architectures") or ["unknown"])[0])

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", "unknown"))


def inspect_source(source: str | Path, *, kind: Kind | None, label: int | None,
                   activation: Activation | None, max_length: int | None) -> SourceModel:
    root = _local_directory(source)
    modules = _read_modules(root / "modules.json") if (root / "modules.json").is_file() else None
    model_dir = root / _transformer_path(modules) if modules is not None else root
    config = _read_json(model_dir / "config.json", what="a Hugging Face model directory")
    if not any((model_dir / name).is_file() for name in _TOKENIZER_FILES):
        raise ExportError(f"{model_dir} has no tokenizer ({', '.join(_TOKENIZER_FILES)}); "
                          "crossrank needs the model's fast tokenizer next to its weights")
    architectures = [str(a) for a in config.get("architectures") or []]
    is_classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
    kind = kind or _infer_kind(root, is_classifier, modules is not None)

    score = pooling = None
    if kind == "cross-encoder":
        if not is_classifier:
            raise ExportError(
                f"{model_dir} is not a sequence-classification model (architectures: "
                f"{architectures or 'none'}); a cross-encoder export needs "
                "*ForSequenceClassification weights. Export a bi-encoder with kind='embedder'.")
        score = _score_head(config, label, activation)
    else:
        if modules is None:
            raise ExportError(f"{root} has no modules.json: an embedder export needs the "
                              "sentence-transformers layout (modules.json, 1_Pooling/config.json) "
                              "to know its pooling")
        pooling = _pooling(root, modules, config)

    return SourceModel(root=root, model_dir=model_dir, kind=kind, config=config,
                       source=Source(path=shown_path(root), revision=_hub_revision(root),
                                     weights_sha256=weights_sha256(model_dir)),
                       max_length=_max_length(root, model_dir, config, max_length),
                       score=score, pooling=pooling)


def weights_sha256(model_dir: Path) -> str:
    """One digest over every weight file: the model's identity, wherever it is copied."""
    files = sorted({f for pattern in _WEIGHT_PATTERNS for f in model_dir.glob(pattern)})
    if not files:
        raise ExportError(f"{model_dir}: no weights (model.safetensors or pytorch_model.bin)")
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def _local_directory(source: str | Path) -> Path:
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise ExportError(f"{path} is a file; pass the model's directory")
    raise ExportError(f"{str(source)!r} is not a local directory. crossrank cannot download from "
                      "the Hugging Face Hub here: pass a local directory (for example one made "
                      "with `huggingface-cli download` on a machine with network access)")


def _read_json(path: Path, what: str = "") -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        hint = f": not {what}" if what else ""
        raise ExportError(f"{path} not found{hint}") from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: cannot read JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return data


def _read_modules(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: cannot read JSON: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(entry, dict) for entry in data):
        raise ExportError(f"{path}: expected a list of modules")
    return data


def _infer_kind(root: Path, is_classifier: bool, has_modules: bool) -> Kind:
    if is_classifier:
        return "cross-encoder"
    if has_modules:
        return "embedder"
    raise ExportError(f"cannot tell what {root} is: not a *ForSequenceClassification model and "
                      "no sentence-transformers modules.json; pass kind explicitly")


def _transformer_path(entries: list[dict[str, Any]]) -> str:
    for entry in entries:
        if entry.get("type") not in (_ST_TRANSFORMER, _ST_POOLING, _ST_NORMALIZE):
            raise ExportError(f"unsupported sentence-transformers module {entry.get('type')!r}: "
                              "crossrank exports Transformer + Pooling (+ Normalize) only")
    transformers = [e for e in entries if e.get("type") == _ST_TRANSFORMER]
    if len(transformers) != 1:
        raise ExportError("modules.json must hold exactly one Transformer module")
    return str(transformers[0].get("path", ""))


def _pooling(root: Path, entries: list[dict[str, Any]], config: dict[str, Any]) -> Pooling:
    pooling_entries = [e for e in entries if e.get("type") == _ST_POOLING]
    if len(pooling_entries) != 1:
        raise ExportError(f"{root}/modules.json must hold exactly one Pooling module")
    settings = _read_json(root / pooling_entries[0].get("path", "1_Pooling") / "config.json")
    mode = settings.get("pooling_mode")
    if mode is None:
        modes = [key.removeprefix("pooling_mode_").removesuffix("_tokens").removesuffix("_token")
                 for key, on in settings.items() if key.startswith("pooling_mode_") and on]
        mode = modes[0] if len(modes) == 1 else "+".join(modes)
    if mode not in _SUPPORTED_POOLING:
        raise ExportError(f"pooling {mode!r} is not supported; crossrank pools with "
                          f"{', '.join(_SUPPORTED_POOLING)}")
    dimension = int(settings.get("word_embedding_dimension") or config["hidden_size"])
    return Pooling(mode=mode, dimension=dimension,
                   normalize=any(e.get("type") == _ST_NORMALIZE for e in entries))


def _score_head(config: dict[str, Any], label: int | None,
                activation: Activation | None) -> ScoreHead:
    labels = config.get("id2label")
    num_labels = len(labels) if isinstance(labels, dict) else int(config.get("num_labels", 2))
    if label is not None and not 0 <= label < num_labels:
        raise ExportError(f"label {label} is out of range: the model has {num_labels} labels")
    if num_labels > 2 and label is None:
        raise ExportError(f"the model has {num_labels} labels ({labels}); pass label= to choose "
                          "which logit is the relevance score")
    reduce: Literal["logit", "log_odds"]
    if num_labels == 1:
        reduce, chosen = "logit", 0
    elif num_labels == 2:
        reduce, chosen = "log_odds", 1 if label is None else label
    else:
        assert label is not None
        reduce, chosen = "logit", label
    return ScoreHead(num_labels=num_labels, label=chosen, reduce=reduce,
                     activation=activation or _default_activation(config, num_labels))


def _default_activation(config: dict[str, Any], num_labels: int) -> Activation:
    """The activation sentence-transformers' CrossEncoder would apply to this model."""
    declared = (config.get("sentence_transformers") or {}).get("activation_fn") or config.get(
        "sbert_ce_default_activation_function")
    if declared is None:
        return "sigmoid" if num_labels == 1 else "none"
    if declared.endswith("Sigmoid"):
        return "sigmoid"
    if declared.endswith("Identity"):
        return "none"
    raise ExportError(f"the model declares activation {declared!r}; crossrank supports Sigmoid "
                      "and Identity: pass activation='none' or 'sigmoid'")


def _max_length(root: Path, model_dir: Path, config: dict[str, Any],
                requested: int | None) -> int:
    positions = int(config.get("max_position_embeddings") or 512)
    if config.get("model_type") in _OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        positions -= (1 if pad is None else int(pad)) + 1
    if requested is not None:
        if requested > positions:
            raise ExportError(f"max_length {requested} exceeds the model's {positions} positions")
        if requested < 8:
            raise ExportError("max_length must be at least 8")
        return requested
    preferred = positions
    st_config = root / "sentence_bert_config.json"
    tokenizer_config = model_dir / "tokenizer_config.json"
    if st_config.is_file():
        preferred = int(_read_json(st_config).get("max_seq_length") or positions)
    elif tokenizer_config.is_file():
        limit = _read_json(tokenizer_config).get("model_max_length")
        if isinstance(limit, int | float) and limit < 1_000_000:
            preferred = int(limit)
    return min(preferred, positions)


def _hub_revision(root: Path) -> str | None:
    """The commit of a hub cache snapshot (``.../snapshots/<commit>``), if that is the source."""
    if root.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", root.name):
        return root.name
    return None
