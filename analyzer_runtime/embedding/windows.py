"""Split a long token sequence into overlapping model windows (pure, no model).

all-MiniLM-L6-v2 sees at most MAX_TOKENS = 256 positions, two of which are the
[CLS] and [SEP] the model was trained with, so a window holds at most 254
content tokens. sentence-transformers silently truncates longer inputs; a rap
track is often longer than that, and truncation would make the embedding say
nothing about the second half of the song. We cover the whole text instead.

The rule: a text of n > CONTENT_TOKENS tokens gets the fewest full-length
windows whose neighbours overlap by at least WINDOW_OVERLAP tokens
(k = 1 + ceil((n - CONTENT_TOKENS) / WINDOW_STRIDE)), the first starting at the
text's start, the last ending at its end, the ones between spaced evenly.
Overlap means a line cut by one boundary is seen whole by the neighbour window.
Full-length, evenly spaced windows let the caller average them with equal
weights: no short tail window that is mostly overlap counts as much as a full
one, and no stretch of the text is covered much more often than another.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_TOKENS = 256
# [CLS] + content + [SEP] must fit in the model's position window.
CONTENT_TOKENS = MAX_TOKENS - 2
# A rap line is ~10-15 word pieces; 32 tokens of overlap keeps two or so lines
# of context across each boundary while costing only ~14% extra compute.
WINDOW_OVERLAP = 32
WINDOW_STRIDE = CONTENT_TOKENS - WINDOW_OVERLAP


def window_starts(
    n_tokens: int, size: int = CONTENT_TOKENS, overlap: int = WINDOW_OVERLAP
) -> list[int]:
    """Start offsets of the windows over `n_tokens` content tokens.

    One window (start 0) when the text fits, including the empty text: the
    model then sees just [CLS] [SEP], as sentence-transformers does."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"need size > overlap >= 0, got size={size} overlap={overlap}")
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    if n_tokens <= size:
        return [0]
    span = n_tokens - size  # how far the last start is from the first
    stride = size - overlap
    gaps = -(-span // stride)  # ceil: the fewest gaps, each at most `stride`
    # Floor division spreads the gaps evenly (they differ by at most one token,
    # and none exceeds ceil(span / gaps) <= stride, so every overlap >= `overlap`).
    return [i * span // gaps for i in range(gaps + 1)]


def split_windows(
    ids: Sequence[int], size: int = CONTENT_TOKENS, overlap: int = WINDOW_OVERLAP
) -> list[list[int]]:
    """The content-token windows (without [CLS]/[SEP]) covering `ids`."""
    return [list(ids[s : s + size]) for s in window_starts(len(ids), size, overlap)]
