"""The training loop: listwise groups, AdamW with warm-up and linear decay, bf16 autocast on
CPU, a wall-clock budget, and validation checkpoints that keep the best state."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from crossrank.train.config import TrainConfig
from crossrank.train.groups import Group
from crossrank.train.loss import listwise_loss, pad_groups
from crossrank.train.student import autocast, group_batch, to_device
from crossrank.train.validate import WindowReport

HEAD = ("classifier.", "pooler.")
"""Name parts of the head's parameters (and the pooler it reads): trained at ``head_lr``."""
NO_DECAY = ("bias", "LayerNorm.weight")
Validator = Callable[[Any], WindowReport]


@dataclass
class TrainResult:
    steps: int
    planned_steps: int
    seconds: float
    stopped_by_budget: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    best_state: dict[str, torch.Tensor] | None = None


def make_batches(groups: Sequence[Group], per_step: int,
                 rng: random.Random) -> list[list[Group]]:
    """Batches of groups of one sequence length (little padding), in a seeded random order."""
    by_length: dict[int, list[Group]] = {}
    for group in groups:
        by_length.setdefault(group.max_length, []).append(group)
    batches: list[list[Group]] = []
    for _, same in sorted(by_length.items()):
        rng.shuffle(same)
        batches += [same[i:i + per_step] for i in range(0, len(same), per_step)]
    rng.shuffle(batches)
    return batches


def param_groups(model: Any, config: TrainConfig,
                 new_head: bool = True) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and norms; a new head learns at ``head_lr``, a
    trained one at the encoder's rate."""
    if config.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    buckets: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (any(part in name for part in HEAD), not any(n in name for n in NO_DECAY))
            buckets.setdefault(key, []).append(param)
    return [{"params": params, "lr": config.head_lr if head and new_head else config.lr,
             "weight_decay": config.weight_decay if decay else 0.0}
            for (head, decay), params in sorted(buckets.items())]


def lr_factor(progress: float, warmup_fraction: float) -> float:
    """Linear warm-up, then linear decay to zero at progress 1."""
    if progress < warmup_fraction:
        return max(progress / warmup_fraction, 1e-3)
    return max(0.0, (1.0 - progress) / max(1e-9, 1.0 - warmup_fraction))


def _selection_score(report: WindowReport) -> float:
    return max(report.rerank, report.best_blend)


def train(model: Any, tokenizer: Any, groups: Sequence[Group], config: TrainConfig,
          validator: Validator | None = None, log_every: int = 25,
          new_head: bool = True) -> TrainResult:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    batches = make_batches(groups, config.groups_per_step, rng)
    total = len(batches)
    optimizer = torch.optim.AdamW(param_groups(model, config, new_head), lr=config.lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    pending = sorted(config.eval_at) if validator else []
    result = TrainResult(0, total, 0.0, False)
    model.train()
    if pending and pending[0] <= 0.0:
        # the model as it starts, what a checkpoint must beat: validated before the clock
        # starts, so that it does not eat the training budget
        pending.pop(0)
        assert validator is not None
        _checkpoint(model, validator, result, 0, 0.0, time.monotonic())
    began = time.monotonic()
    pairs = 0
    progress = 0.0
    for step, batch in enumerate(batches, start=1):
        # progress runs on steps or on the clock, whichever is further: on a busy machine the
        # schedule still decays to zero inside the budget instead of being cut off midway
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * lr_factor(progress, config.warmup_fraction)
        encoded, sizes = group_batch(tokenizer, batch)
        with autocast(model, config.bf16):
            logits = model(**to_device(encoded, model)).logits.reshape(-1)
        scores, mask = pad_groups(logits.float().cpu(), sizes)
        teacher = None
        if all(g.teacher is not None for g in batch):
            teacher, _ = pad_groups(torch.tensor([t for g in batch for t in g.teacher or ()]),
                                    sizes)
        parts = listwise_loss(scores, mask, teacher, config.distill_weight,
                              config.teacher_scale)
        cast(Any, parts.total).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        pairs += sum(sizes)
        result.steps = step
        elapsed = time.monotonic() - began
        progress = min(1.0, max(step / total, elapsed / max(config.time_budget_s, 1e-9)))
        if step % log_every == 0 or progress >= 1.0:
            loss = float(parts.total.detach())
            print(f"[train] step {step}/{total} progress {progress:.3f} loss {loss:.4f} "
                  f"ce {parts.ce:.4f} kl {parts.kl:.4f} {elapsed:.0f} s "
                  f"{pairs / max(elapsed, 1e-9):.1f} pairs/s", file=sys.stderr, flush=True)
        if pending and progress >= pending[0] - 1e-9:
            while pending and progress >= pending[0] - 1e-9:
                pending.pop(0)
            assert validator is not None
            _checkpoint(model, validator, result, step, progress, began)
        if progress >= 1.0:
            result.stopped_by_budget = step < total
            break
    result.seconds = time.monotonic() - began
    return result


def _checkpoint(model: Any, validator: Validator, result: TrainResult, step: int,
                progress: float, began: float) -> None:
    started = time.monotonic()
    report = validator(model)
    entry = {"step": step, "progress": round(progress, 3),
             "train_seconds": round(started - began, 1),
             "eval_seconds": round(time.monotonic() - started, 1), **report.as_dict()}
    result.history.append(entry)
    print(f"[train] validation at step {step}: bm25 {report.bm25:.4f} rerank "
          f"{report.rerank:.4f} blend {report.best_blend:.4f} (alpha {report.best_alpha})",
          file=sys.stderr, flush=True)
    if result.best is None or _selection_score(report) > result.best["selection"]:
        result.best = {**entry, "selection": round(_selection_score(report), 4)}
        result.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.train()
