"""The test helper that compares top-k rankings up to float ties (tests/support/ranking.py)."""

from __future__ import annotations

import pytest
import torch
from support.ranking import assert_same_topk


def test_assert_same_topk_tolerates_ties_and_nothing_else():
    scores = torch.tensor([[3.0, 2.0, 2.0 + 1e-7, 1.0]], dtype=torch.float64)
    values, ids = scores.topk(2, dim=1)

    def score(i):
        return scores.gather(1, i)

    assert ids.tolist() == [[0, 2]]
    assert_same_topk(torch.tensor([[0, 1]]), values, score)  # 1e-7 apart on a scale of 3: a tie
    assert_same_topk(ids, values, score)
    with pytest.raises(AssertionError):
        assert_same_topk(torch.tensor([[0, 3]]), values, score)
    with pytest.raises(AssertionError, match="out of order"):
        assert_same_topk(torch.tensor([[2, 0]]), values, score)
