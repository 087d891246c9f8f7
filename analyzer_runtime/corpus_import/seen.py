"""The keys an import has already seen, in ~8 bytes each.

A file may hold the same track twice; the first occurrence is imported and the
others are counted as duplicates, wherever they are in the file. Keys are 64-bit
integers (a Genius id, or a digest of the (artist, title) key), kept in a sorted
`array('q')` searched by bisection plus a set of recent ones merged in now and then:
a million keys take ~8 MB instead of ~80 MB as a set of ints.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left


class SeenKeys:
    def __init__(self, merge_at: int = 1 << 17) -> None:
        self._sorted = array("q")
        self._recent: set[int] = set()
        self._merge_at = merge_at

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, key: int) -> bool:
        if key in self._recent:
            return True
        keys = self._sorted
        i = bisect_left(keys, key)
        return i < len(keys) and keys[i] == key

    def add(self, key: int) -> bool:
        """Remember `key`; True if it was new."""
        if key in self:
            return False
        self._recent.add(key)
        if len(self._recent) >= self._merge_at:
            self._merge()
        return True

    def _merge(self) -> None:
        import numpy as np  # here: a file with few keys never pays for importing it

        # The two are disjoint (add() checks), so concatenate and sort is a union; the
        # result is copied straight into a fresh array: peak ~3x the keys, 24 bytes each.
        merged = np.concatenate(
            [
                np.frombuffer(self._sorted, dtype=np.int64),
                np.fromiter(self._recent, dtype=np.int64, count=len(self._recent)),
            ]
        )
        merged.sort()
        self._recent = set()
        self._sorted = array("q")
        self._sorted.frombytes(merged.data.cast("B"))
