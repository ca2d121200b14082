"""The listwise loss, the validation metric, and a two-step run of a tiny model."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from crossrank.train.config import TrainConfig
from crossrank.train.groups import Group
from crossrank.train.loss import listwise_loss, pad_groups
from crossrank.train.trainer import make_batches, train
from crossrank.train.validate import blended, evaluate_window, ndcg_at, reorder


def test_cross_entropy_is_minus_log_softmax_of_the_positive() -> None:
    scores = torch.tensor([[2.0, 1.0, 0.0]])
    mask = torch.ones_like(scores, dtype=torch.bool)
    parts = listwise_loss(scores, mask, None, 1.0, 20.0)
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 1))
    assert parts.ce == pytest.approx(expected, rel=1e-6)
    assert parts.kl == 0.0


def test_padding_is_ignored() -> None:
    flat = torch.tensor([2.0, 1.0, 0.0, 3.0, -1.0])
    padded, mask = pad_groups(flat, [3, 2])
    assert padded.shape == (2, 3) and mask.tolist() == [[True] * 3, [True, True, False]]
    teacher, _ = pad_groups(torch.tensor([0.9, 0.5, 0.1, 0.7, 0.2]), [3, 2])
    both = listwise_loss(padded, mask, teacher, 1.0, 20.0)
    first = listwise_loss(padded[:1], mask[:1], teacher[:1], 1.0, 20.0)
    second = listwise_loss(padded[1:, :2], mask[1:, :2], teacher[1:, :2], 1.0, 20.0)
    assert both.ce == pytest.approx((first.ce + second.ce) / 2, rel=1e-6)
    assert both.kl == pytest.approx((first.kl + second.kl) / 2, rel=1e-5)


def test_distillation_vanishes_when_the_student_agrees_with_the_teacher() -> None:
    teacher = torch.tensor([[0.8, 0.3, 0.5]])
    mask = torch.ones_like(teacher, dtype=torch.bool)
    agreeing = listwise_loss(teacher * 20.0, mask, teacher, 1.0, 20.0)
    reversed_ = listwise_loss(-teacher * 20.0, mask, teacher, 1.0, 20.0)
    assert agreeing.kl == pytest.approx(0.0, abs=1e-6)
    assert reversed_.kl > 1.0


def test_the_gradient_raises_the_positive_and_lowers_the_negatives() -> None:
    scores = torch.zeros((1, 4), requires_grad=True)
    parts = listwise_loss(scores, torch.ones((1, 4), dtype=torch.bool), None, 0.0, 20.0)
    parts.total.backward()
    assert scores.grad is not None
    grad = scores.grad[0].tolist()
    assert grad[0] < 0 and all(g > 0 for g in grad[1:])


def test_ndcg_uses_linear_gain_and_all_judged_documents() -> None:
    relevant = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "x"], relevant) == pytest.approx(1.0)
    # b never retrieved: the ideal still counts it
    assert ndcg_at(["x", "a"], relevant) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_at(["x"] * 10 + ["a"], relevant) == 0.0


def test_blend_and_reorder_follow_the_proxy() -> None:
    rerank = np.array([0.0, 10.0, 5.0])
    first = np.array([3.0, 1.0, 2.0])
    assert blended(rerank, first, 1.0).tolist() == [0.0, 1.0, 0.5]
    assert blended(rerank, first, 0.0).tolist() == [1.0, 0.0, 0.5]
    # ties keep first-stage order
    assert reorder(["a", "b", "c"], np.array([1.0, 1.0, 2.0])) == ["c", "a", "b"]


def test_evaluate_window_keeps_the_tail_in_bm25_order() -> None:
    candidates = {"q": [("x", 9.0), ("y", 8.0), ("rel", 7.0), ("z", 1.0)]}
    qrels = {"q": {"rel": 1}}
    scores = {"q": np.array([0.0, 0.0, 5.0])}
    report = evaluate_window(candidates, scores, qrels, window=3, alphas=(0.0, 1.0))
    assert report.bm25 == pytest.approx(1 / math.log2(4))
    assert report.rerank == pytest.approx(1.0)
    assert report.blend == {0.0: pytest.approx(report.bm25), 1.0: pytest.approx(1.0)}
    assert report.best_alpha == 1.0
    narrow = evaluate_window(candidates, scores, qrels, window=2, alphas=(1.0,))
    assert narrow.rerank == pytest.approx(report.bm25)  # "rel" lies past the window


def _tokenizer() -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "cats", "dogs", "purr", "bark", "fish",
             "swim", "loud", "soft"]
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def _groups() -> list[Group]:
    return [Group("scifact", "cats", ("cats purr soft", "dogs bark loud", "fish swim"),
                  (0.9, 0.2, 0.1), 16),
            Group("scifact", "dogs", ("dogs bark", "cats purr", "fish swim soft"),
                  (0.8, 0.3, 0.1), 16),
            Group("wikiqa", "fish", ("fish swim", "cats purr"), None, 8),
            Group("wikiqa", "purr", ("cats purr", "dogs bark"), None, 8)]


def test_batches_hold_one_sequence_length() -> None:
    batches = make_batches(_groups(), 2, random.Random(0))
    assert sorted(len(b) for b in batches) == [2, 2]
    assert all(len({g.max_length for g in b}) == 1 for b in batches)


def test_two_training_steps_of_a_tiny_model_move_its_weights() -> None:
    from crossrank.train.student import tiny_student

    model = tiny_student(seed=3, vocab_size=12)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(groups_per_step=2, lr=1e-3, head_lr=1e-2, warmup_fraction=0.5,
                         bf16=False, freeze_word_embeddings=True, threads=1)
    result = train(model, _tokenizer(), _groups(), config, validator=None)
    assert result.steps == result.planned_steps == 2
    assert not result.stopped_by_budget
    after = model.state_dict()
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert not torch.equal(before["bert.encoder.layer.0.attention.self.query.weight"],
                           after["bert.encoder.layer.0.attention.self.query.weight"])
    # frozen: the word embeddings stay as they were
    assert torch.equal(before["bert.embeddings.word_embeddings.weight"],
                       after["bert.embeddings.word_embeddings.weight"])


def test_the_time_budget_stops_training_early() -> None:
    from crossrank.train.student import tiny_student

    model = tiny_student(seed=3, vocab_size=12)
    config = TrainConfig(groups_per_step=1, bf16=False, threads=1, time_budget_s=0.0)
    result = train(model, _tokenizer(), _groups(), config, validator=None)
    assert result.steps == 1 and result.planned_steps == 4 and result.stopped_by_budget


def test_the_learning_rate_warms_up_then_decays_to_zero() -> None:
    from crossrank.train.trainer import lr_factor

    assert lr_factor(0.05, 0.1) == pytest.approx(0.5)
    assert lr_factor(0.1, 0.1) == pytest.approx(1.0)
    assert lr_factor(0.55, 0.1) == pytest.approx(0.5)
    assert lr_factor(1.0, 0.1) == 0.0
