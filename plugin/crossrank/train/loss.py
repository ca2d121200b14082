"""Listwise loss over groups (positive at index 0), with distillation from the bi-encoder.

    loss = CE(softmax(student), positive) + w * KL(softmax(scale * teacher) || softmax(student))

The first term is the judgment; the second spreads the teacher's opinion over every negative,
which the one-hot judgment says nothing about. Groups may differ in size: ``mask`` marks the
real entries of each padded row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_NEG = -1e4


@dataclass(frozen=True)
class LossParts:
    total: torch.Tensor
    ce: float
    kl: float


def listwise_loss(scores: torch.Tensor, mask: torch.Tensor, teacher: torch.Tensor | None,
                  distill_weight: float, teacher_scale: float) -> LossParts:
    """``scores``, ``mask`` and ``teacher``: [groups, max group size]."""
    scores = scores.float().masked_fill(~mask, _NEG)
    target = torch.zeros(scores.shape[0], dtype=torch.long)
    ce = F.cross_entropy(scores, target)
    if teacher is None or distill_weight <= 0.0:
        return LossParts(ce, float(ce.detach()), 0.0)
    t_logits = (teacher.float() * teacher_scale).masked_fill(~mask, _NEG)
    t_log = F.log_softmax(t_logits, dim=-1)
    s_log = F.log_softmax(scores, dim=-1)
    kl = (t_log.exp() * (t_log - s_log)).masked_fill(~mask, 0.0).sum(-1).mean()
    total = ce + distill_weight * kl
    return LossParts(total, float(ce.detach()), float(kl.detach()))


def pad_groups(flat: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a flat score vector into a padded [groups, max size] matrix and its mask."""
    rows = list(torch.split(flat, sizes))
    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=_NEG)
    mask = torch.nn.utils.rnn.pad_sequence(
        [torch.ones(size, dtype=torch.bool) for size in sizes], batch_first=True)
    return padded, mask
