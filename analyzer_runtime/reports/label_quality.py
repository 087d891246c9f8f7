"""How good the LLM's labels are, beyond agreeing with VADER/NRC (issue 25): its own
consistency (the same tracks asked again), agreement with a reference label set
(Cohen's kappa), how often an answer was schema-valid, and how well a cascade's
cheap analyzer agrees with the LLM on the tracks it kept. Pure computation on plain
rows; what is read or asked lives in data.py and consistency.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from analyzer_runtime.reports import stats

SENTIMENTS = ("positive", "negative", "neutral", "mixed")


def _share(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def cohen_kappa(
    pairs: Sequence[tuple[str, str]], labels: Sequence[str] = SENTIMENTS
) -> dict[str, Any]:
    """Cohen's kappa of (reference, predicted) label pairs, from their confusion
    matrix: (p_o - p_e) / (1 - p_e), p_o the observed agreement, p_e the agreement
    expected from the two marginal distributions. None when p_e = 1 (both sides use
    one and the same label: kappa is undefined)."""
    labels = list(labels) + sorted({x for p in pairs for x in p} - set(labels))
    matrix = {a: dict.fromkeys(labels, 0) for a in labels}
    for ref, pred in pairs:
        matrix[ref][pred] += 1
    n = len(pairs)
    ref_n = {a: sum(matrix[a].values()) for a in labels}
    pred_n = {b: sum(matrix[a][b] for a in labels) for b in labels}
    agree = sum(matrix[a][a] for a in labels)
    kappa: float | None = None
    if n:
        p_o = agree / n
        p_e = sum(ref_n[a] * pred_n[a] for a in labels) / (n * n)
        kappa = stats.clean((p_o - p_e) / (1 - p_e)) if p_e < 1 else None
    return {
        "n": n,
        "kappa": kappa,
        "accuracy": _share(agree, n),
        "confusion": {"rows": "reference", "columns": "llm", "counts": matrix},
        "per_class": {
            a: {"reference": ref_n[a], "llm": pred_n[a], "both": matrix[a][a]} for a in labels
        },
    }


@dataclass(slots=True)
class Answer:
    sentiment: str
    themes: list[str]


@dataclass(slots=True)
class Repeated:
    """One sampled track: its stored answer, and each repeat's (None: not answered)."""

    track_id: int
    stored: Answer
    repeats: list[Answer | None] = field(default_factory=list)


def consistency(
    samples: Sequence[Repeated], *, repeats: int, tokens: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Self-consistency of the sampled tracks. Per track, its answers are the stored
    one and the repeats that were answered:
    - sentiment_all_match: share of the tracks with an answered repeat whose repeats
      all gave the stored label;
    - sentiment_vs_stored: share of answered repeats with the stored label;
    - sentiment_pairwise: agreeing pairs / all pairs among each track's answers,
      pooled over tracks;
    - themes_jaccard_vs_stored / _pairwise: the mean Jaccard overlap of the theme
      sets, repeat vs stored / over the same pairs."""
    answered = [(s, [r for r in s.repeats if r is not None]) for s in samples]
    asked = [(s, rs) for s, rs in answered if rs]
    vs_stored = [(s.stored, r) for s, rs in asked for r in rs]
    pairs = [p for s, rs in asked for p in combinations([s.stored, *rs], 2)]
    return {
        "tracks": len(samples),
        "repeats": repeats,
        "answered_repeats": sum(len(rs) for _, rs in answered),
        "failed_repeats": sum(len(s.repeats) - len(rs) for s, rs in answered),
        "tracks_compared": len(asked),
        "sentiment_all_match": _share(
            sum(all(r.sentiment == s.stored.sentiment for r in rs) for s, rs in asked),
            len(asked),
        ),
        "sentiment_vs_stored": _share(
            sum(a.sentiment == b.sentiment for a, b in vs_stored), len(vs_stored)
        ),
        "sentiment_pairwise": _share(sum(a.sentiment == b.sentiment for a, b in pairs), len(pairs)),
        "themes_jaccard_vs_stored": stats.mean(
            stats.jaccard(a.themes, b.themes) for a, b in vs_stored
        ),
        "themes_jaccard_pairwise": stats.mean(stats.jaccard(a.themes, b.themes) for a, b in pairs),
        "tokens": tokens,
    }


@dataclass(slots=True)
class ReferenceRow:
    """One line of a reference label set (reference.py reads the file)."""

    line: int
    track_id: int | None
    artist: str | None
    title: str | None
    sentiment: str | None
    themes: list[str] | None = None
    quality: float | None = None


def reference_agreement(
    refs: Sequence[ReferenceRow],
    matched: dict[int, int],
    rows_by_track: dict[int, dict[str, Any]],
    *,
    source: str,
) -> dict[str, Any]:
    """The LLM's labels against a reference set: `matched` maps a reference row's
    line to the track it names (by id, or by artist and title); `rows_by_track` the
    LLM's labels of the report's tracks. Sentiment: Cohen's kappa, accuracy and the
    per-class counts; themes: mean Jaccard; quality: mean absolute difference and
    correlations - each over the rows that carry it."""
    labelled = [
        (r, rows_by_track[matched[r.line]])
        for r in refs
        if r.line in matched and matched[r.line] in rows_by_track
    ]
    sent = [
        (r.sentiment, row["sentiment"]) for r, row in labelled if r.sentiment and row["sentiment"]
    ]
    themes = [stats.jaccard(r.themes, row["themes"]) for r, row in labelled if r.themes is not None]
    quality = [
        (r.quality, float(row["quality"]))
        for r, row in labelled
        if r.quality is not None and row.get("quality") is not None
    ]
    return {
        "source": source,
        "rows": len(refs),
        "matched_rows": len(matched),
        "unmatched_rows": len(refs) - len(matched),
        "with_llm_label": len(labelled),
        "sentiment": cohen_kappa(sent),
        "themes_jaccard_mean": stats.mean(themes),
        "themes_rows": len(themes),
        "quality": {
            "n": len(quality),
            "mean_abs_diff": stats.mean(abs(a - b) for a, b in quality),
            **{
                k: v
                for k, v in stats.correlations(
                    [a for a, _ in quality], [b for _, b in quality]
                ).items()
                if k != "n"
            },
        },
    }


# Why a track of a run got no LLM answer (run_items.last_error of failed items): the
# provider never gave one (down, refused the key, rejected the request), or it did
# and no answer was schema-valid (malformed, refused by the model, failed
# validation, cut off at maxTokens, still invalid after the repair).
NO_ANSWER_PREFIXES = ("provider unavailable", "rejected:")


def failure_kind(reason: str | None) -> str:
    """`no_answer` or `invalid` for a failed item's reason (see NO_ANSWER_PREFIXES)."""
    text = (reason or "").strip().lower()
    return "no_answer" if text.startswith(NO_ANSWER_PREFIXES) else "invalid"


def schema_validity(
    rows: Sequence[dict[str, Any]], failures: dict[str, int], fallbacks: int
) -> dict[str, Any]:
    """Of the tracks the model answered (stored answers and failures with an invalid
    answer): valid at the first request, valid only at the second (`repaired`: a repair
    request, or a retry with more tokens after a cut-off - the stored data does not say
    which), or never. A packed track asked again alone counts by the request group that
    answered it. Tracks without any answer (provider down, fallbacks) are not in it."""
    first = sum(not r["repaired"] for r in rows)
    second = len(rows) - first
    never = failures.get("invalid", 0)
    total = first + second + never
    return {
        "answered_tracks": total,
        "valid_first_request": first,
        "valid_after_second_request": second,
        "never_valid": never,
        "share_first": _share(first, total),
        "share_after_second": _share(second, total),
        "share_never": _share(never, total),
        "share_valid": _share(first + second, total),
        "no_answer_failures": failures.get("no_answer", 0),
        "fallbacks": fallbacks,
    }


def cascade_agreement(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """(cascade-kept result, LLM result) of the same tracks: how often the cheap
    analyzer's label is the LLM's. Sentiment where both have one, quality and
    complexity differences where both have them (algorithmic gives no quality)."""
    by_analyzer: dict[str, int] = {}
    for c, _ in pairs:
        by_analyzer[c["analyzer_type"]] = by_analyzer.get(c["analyzer_type"], 0) + 1
    sent = [(c["sentiment"], b["sentiment"]) for c, b in pairs if c["sentiment"] and b["sentiment"]]
    q = [
        (c["quality"], b["quality"])
        for c, b in pairs
        if c["quality"] is not None and b["quality"] is not None
    ]
    cx = [
        (c["complexity"], b["complexity"])
        for c, b in pairs
        if c["complexity"] is not None and b["complexity"] is not None
    ]
    return {
        "tracks": len(pairs),
        "by_analyzer": by_analyzer,
        "sentiment_tracks": len(sent),
        "sentiment_agreement": _share(sum(a == b for a, b in sent), len(sent)),
        "sentiment_kappa": cohen_kappa(sent)["kappa"] if sent else None,
        "quality_tracks": len(q),
        "quality_mean_abs_diff": stats.mean(abs(a - b) for a, b in q),
        "quality_within_1": _share(sum(abs(a - b) <= 1 for a, b in q), len(q)),
        "complexity_mean_abs_diff": stats.mean(abs(a - b) for a, b in cx),
    }
