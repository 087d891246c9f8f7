"""Shard assignment arithmetic (issue 16): `shard_sizes` counts, without building the
list, exactly what `assign_shards` assigns; set-based plans rely on it for the
run_shards rows while the server computes each item's shard."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer_runtime.ledger.shards import assign_shards, shard_sizes


@given(st.integers(min_value=0, max_value=5000), st.integers(min_value=1, max_value=1000))
def test_shard_sizes_match_assign_shards(n: int, shards: int) -> None:
    counts = Counter(assign_shards(n, shards))
    assert shard_sizes(n, shards) == [counts.get(s, 0) for s in range(shards)]


@pytest.mark.parametrize(("n", "shards"), [(1_000_000, 1000), (1_000_000, 7), (999_999, 64)])
def test_shard_sizes_at_a_million_are_even(n: int, shards: int) -> None:
    sizes = shard_sizes(n, shards)
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
