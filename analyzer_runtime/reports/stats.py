"""Small statistics helpers that return JSON-ready values (None instead of NaN)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def clean(x: float | None, digits: int = 4) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits)


def mean(xs: Iterable[float | None]) -> float | None:
    vals = [float(x) for x in xs if x is not None]
    return clean(sum(vals) / len(vals)) if vals else None


def correlations(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float | int | None]:
    """Pearson and Spearman of paired values; None when undefined (n < 3 or constant)."""
    n = len(xs)
    out: dict[str, float | int | None] = {"n": n, "pearson": None, "spearman": None}
    if n < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return out
    from scipy import stats

    out["pearson"] = clean(stats.pearsonr(xs, ys).statistic)
    out["spearman"] = clean(stats.spearmanr(xs, ys).statistic)
    return out


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per [edges[i], edges[i+1]) bin; the last bin includes its right edge."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        for i in range(len(counts)):
            last = i == len(counts) - 1
            if edges[i] <= v < edges[i + 1] or (last and v == edges[-1]):
                counts[i] += 1
                break
    return counts


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)
