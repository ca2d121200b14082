"""Length-sorted, token-budgeted batches (pure: no model)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from crossrank.models import token_batches


@given(st.lists(st.integers(1, 600), max_size=200), st.integers(16, 20000))
def test_every_position_once_and_within_budget(lengths: list[int], budget: int) -> None:
    plan = token_batches.plan(lengths, budget)
    seen = np.concatenate(plan) if plan else np.array([], dtype=np.intp)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for rows in plan:
        width = max(lengths[i] for i in rows)
        assert len(rows) == 1 or len(rows) * width <= budget
        assert [lengths[i] for i in rows] == sorted((lengths[i] for i in rows), reverse=True)


def test_long_sequences_are_cut_by_attention_cost() -> None:
    plan = token_batches.plan([2048] * 8, 16384)
    assert [len(rows) for rows in plan] == [2, 2, 2, 2]  # 16384 * 512 / 2048**2 = 2 rows
    assert [len(rows) for rows in token_batches.plan([256] * 100, 16384)] == [64, 36]


def test_pad_right_with_masks_and_type_ids() -> None:
    encodings = [SimpleNamespace(ids=[5, 6, 7], type_ids=[0, 1, 1]),
                 SimpleNamespace(ids=[8], type_ids=[0])]
    batch = token_batches.pad(encodings, np.array([1, 0]), pad_id=3)
    assert batch.rows.tolist() == [1, 0]
    assert batch.input_ids.tolist() == [[8, 3, 3], [5, 6, 7]]
    assert batch.attention_mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert batch.token_type_ids.tolist() == [[0, 0, 0], [0, 1, 1]]
