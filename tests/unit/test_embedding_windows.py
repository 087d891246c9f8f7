"""The window rule for texts longer than the model's 256 positions."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer_runtime.embedding.windows import (
    CONTENT_TOKENS,
    MAX_TOKENS,
    WINDOW_OVERLAP,
    WINDOW_STRIDE,
    split_windows,
    window_starts,
)


def test_constants_fit_the_model_window() -> None:
    assert MAX_TOKENS == 256
    assert CONTENT_TOKENS == 254  # + [CLS] + [SEP]
    assert WINDOW_STRIDE == CONTENT_TOKENS - WINDOW_OVERLAP
    assert 0 < WINDOW_OVERLAP < CONTENT_TOKENS


@pytest.mark.parametrize("n", [0, 1, 100, 253, 254])
def test_a_text_that_fits_is_one_window_of_itself(n: int) -> None:
    ids = list(range(n))
    assert window_starts(n) == [0]
    assert split_windows(ids) == [ids]


def test_one_token_past_the_window_gives_two_windows() -> None:
    ids = list(range(255))
    wins = split_windows(ids)
    assert [len(w) for w in wins] == [254, 254]
    assert wins[0] == ids[:254]
    assert wins[1] == ids[1:]


def test_exact_counts_and_boundaries() -> None:
    # Two windows reach at most 254 + 222 = 476 tokens with a 32-token overlap.
    assert window_starts(476) == [0, 222]
    # One more token needs a third window; the starts spread evenly.
    assert window_starts(477) == [0, 111, 223]
    assert window_starts(1000) == [0, 186, 373, 559, 746]


def test_overlap_is_the_minimum_shared_span() -> None:
    wins = split_windows(list(range(476)))
    shared = set(wins[0]) & set(wins[1])
    assert len(shared) == WINDOW_OVERLAP
    assert sorted(shared) == list(range(222, 254))


def test_small_custom_window() -> None:
    assert split_windows([1, 2, 3, 4, 5, 6, 7], size=4, overlap=1) == [[1, 2, 3, 4], [4, 5, 6, 7]]
    assert split_windows([1, 2, 3, 4, 5, 6, 7, 8], size=4, overlap=1) == [
        [1, 2, 3, 4],
        [3, 4, 5, 6],
        [5, 6, 7, 8],
    ]


@pytest.mark.parametrize(
    ("size", "overlap", "n"), [(4, 4, 1), (4, 5, 1), (0, 0, 1), (4, -1, 1), (4, 1, -1)]
)
def test_invalid_arguments_are_rejected(size: int, overlap: int, n: int) -> None:
    with pytest.raises(ValueError):
        window_starts(n, size, overlap)


@given(st.integers(min_value=CONTENT_TOKENS + 1, max_value=20_000))
def test_long_texts_are_covered_by_full_windows_with_the_overlap(n: int) -> None:
    starts = window_starts(n)
    # The fewest windows that can cover n tokens with the overlap.
    assert len(starts) == 1 + math.ceil((n - CONTENT_TOKENS) / WINDOW_STRIDE)
    assert starts[0] == 0
    assert starts[-1] + CONTENT_TOKENS == n  # full windows, the last ends at the text's end
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) <= WINDOW_STRIDE  # every neighbour pair overlaps by >= WINDOW_OVERLAP
    assert max(gaps) - min(gaps) <= 1  # evenly spread
    wins = split_windows(range(n))
    assert all(len(w) == CONTENT_TOKENS for w in wins)
    assert set().union(*map(set, wins)) == set(range(n))
