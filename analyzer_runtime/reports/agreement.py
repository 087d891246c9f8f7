"""The LLM agreement report's numbers: how a run's LLM answers agree with the free
analyzers on the same tracks, how its scores are distributed, how many tracks fell
back or failed, and how much packing (tracksPerRequest k > 1 vs 1) changes answers."""

from __future__ import annotations

from collections import Counter
from typing import Any

from analyzer_runtime.analyzers.emotion import EMOTIONS
from analyzer_runtime.reports import stats

LLM_LABELS = ("positive", "negative", "neutral", "mixed")
VADER_LABELS = ("positive", "negative", "neutral")
# The LLM's label on VADER's scale: mixed and neutral both sit at 0.
LABEL_SCORE = {"positive": 1.0, "negative": -1.0, "neutral": 0.0, "mixed": 0.0}
QUALITY_BINS = list(range(1, 12))  # 1..10, one bin each
COMPLEXITY_BINS = [i / 10 for i in range(11)]
TOP_THEMES = 10


def sentiment_agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """LLM label (as -1/0/+1) vs VADER compound, and a confusion table of labels."""
    paired = [r for r in rows if r["compound"] is not None and r["sentiment"] in LABEL_SCORE]
    corr = stats.correlations(
        [LABEL_SCORE[r["sentiment"]] for r in paired], [r["compound"] for r in paired]
    )
    table = {lb: dict.fromkeys(VADER_LABELS, 0) for lb in LLM_LABELS}
    for r in paired:
        if r["vader_label"] in VADER_LABELS:
            table[r["sentiment"]][r["vader_label"]] += 1
    comparable = sum(table[lb][lb] for lb in VADER_LABELS)
    polar = sum(table[a][b] for a in VADER_LABELS for b in VADER_LABELS)
    emo = [r for r in rows if r.get("emo_label") in VADER_LABELS and r["sentiment"] in VADER_LABELS]
    return {
        "tracks": len(paired),
        "llm_score": "positive 1, negative -1, neutral and mixed 0",
        "vs_vader_compound": corr,
        "compound_mean_by_llm_label": {
            lb: stats.mean(r["compound"] for r in paired if r["sentiment"] == lb)
            for lb in LLM_LABELS
        },
        "confusion": {"rows": "llm", "columns": "vader", "counts": table},
        "label_agreement_vader": round(comparable / polar, 4) if polar else None,
        "label_agreement_emotion": (
            round(sum(r["sentiment"] == r["emo_label"] for r in emo) / len(emo), 4) if emo else None
        ),
    }


def themes_vs_emotions(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """For the commonest LLM themes: mean NRC emotion scores of the tracks with the
    theme, divided by the mean over all tracks (lift > 1: the emotion goes with it)."""
    with_emo = [r for r in rows if any(v is not None for v in r["emotions"].values())]
    base = {e: stats.mean(r["emotions"][e] for r in with_emo) for e in EMOTIONS}
    counts: Counter[str] = Counter(t for r in with_emo for t in set(r["themes"]))
    themes = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_THEMES]]
    lift: dict[str, dict[str, float | None]] = {}
    for t in themes:
        having = [r for r in with_emo if t in r["themes"]]
        lift[t] = {}
        for e in EMOTIONS:
            m = stats.mean(r["emotions"][e] for r in having)
            b = base[e]
            lift[t][e] = stats.clean(m / b, 3) if m is not None and b else None
    top = {
        t: max((e for e in EMOTIONS if lift[t][e] is not None), key=lambda e: lift[t][e] or 0.0)
        if any(lift[t][e] is not None for e in EMOTIONS)
        else None
        for t in themes
    }
    return {
        "tracks": len(with_emo),
        "themes": themes,
        "theme_counts": {t: counts[t] for t in themes},
        "emotions": list(EMOTIONS),
        "emotion_means": base,
        "lift": lift,
        "strongest_emotion": top,
    }


def distributions(rows: list[dict[str, Any]]) -> dict[str, Any]:
    q = [r["quality"] for r in rows if r["quality"] is not None]
    c = [r["complexity"] for r in rows if r["complexity"] is not None]
    alg = [(r["complexity"], r["alg_complexity"]) for r in rows]
    alg = [(a, b) for a, b in alg if a is not None and b is not None]
    return {
        "quality": {
            "n": len(q),
            "mean": stats.mean(q),
            "bins": QUALITY_BINS[:-1],
            "counts": stats.histogram(q, [b - 0.5 for b in QUALITY_BINS]),
        },
        "complexity": {
            "n": len(c),
            "mean": stats.mean(c),
            "edges": COMPLEXITY_BINS,
            "counts": stats.histogram(c, COMPLEXITY_BINS),
            "vs_algorithmic_complexity": stats.correlations(
                [a for a, _ in alg], [b for _, b in alg]
            ),
        },
        "sentiment_labels": dict(Counter(r["sentiment"] for r in rows)),
    }


def outcomes(
    ledger: dict[str, Any], fallbacks: dict[str, int], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    items = ledger["items"]
    total = sum(items.values())
    fb = sum(fallbacks.values())
    share = lambda n: round(n / total, 4) if total else None  # noqa: E731
    return {
        "items": total,
        "states": items,
        "llm_results": len(rows),
        "fallback_results": fallbacks,
        "fallback_used_counter": ledger["shards"]["fallback_used"],
        "share_llm": share(len(rows)),
        "share_fallback": share(fb),
        "share_failed": share(items.get("failed", 0)),
        "share_skipped": share(items.get("skipped", 0)),
        "share_pending": share(items.get("pending", 0)),
        "repaired": sum(r["repaired"] for r in rows),
        "truncated": sum(r["truncated"] for r in rows),
        "failure_reasons": ledger["failure_reasons"],
    }


def tokens(ledger: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    per = [
        (r["tokens_prompt"] or 0) + (r["tokens_completion"] or 0)
        for r in rows
        if r["tokens_prompt"] is not None
    ]
    s = ledger["shards"]
    answered = len(rows)
    return {
        "prompt_total": int(s["tokens_prompt"]),
        "completion_total": int(s["tokens_completion"]),
        # All tokens the run paid for (repairs, retries, failed packs) per stored answer.
        "per_answered_track": (
            round((s["tokens_prompt"] + s["tokens_completion"]) / answered, 1) if answered else None
        ),
        "per_track_stored_mean": stats.mean(per),
    }


def _tokens_of(r: dict[str, Any]) -> int | None:
    if r["tokens_prompt"] is None:
        return None
    return int(r["tokens_prompt"] or 0) + int(r["tokens_completion"] or 0)


def packing(
    this_k: int,
    other: dict[str, Any],
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> dict[str, Any]:
    """How the answers of this run (k tracks per request) differ from another version's
    on the same tracks: quality, complexity, sentiment, themes, tokens per track."""
    qa = [(a["quality"], b["quality"]) for a, b in pairs if a["quality"] and b["quality"]]
    ca = [
        (a["complexity"], b["complexity"])
        for a, b in pairs
        if a["complexity"] is not None and b["complexity"] is not None
    ]
    return {
        "other_model_version": other["model_version"],
        "other_run": other["run"],
        "tracks_per_request": {"this": this_k, "other": other["tracks_per_request"]},
        "tracks": len(pairs),
        "quality_mean_abs_diff": stats.mean(abs(a - b) for a, b in qa),
        "quality_mean": {
            "this": stats.mean(a for a, _ in qa),
            "other": stats.mean(b for _, b in qa),
        },
        "quality_correlation": stats.correlations([a for a, _ in qa], [b for _, b in qa]),
        "complexity_mean_abs_diff": stats.mean(abs(a - b) for a, b in ca),
        "sentiment_agreement": (
            round(sum(a["sentiment"] == b["sentiment"] for a, b in pairs) / len(pairs), 4)
            if pairs
            else None
        ),
        "theme_jaccard_mean": stats.mean(stats.jaccard(a["themes"], b["themes"]) for a, b in pairs),
        "tokens_per_track": {
            "this": stats.mean(_tokens_of(a) for a, _ in pairs),
            "other": stats.mean(_tokens_of(b) for _, b in pairs),
        },
    }


def build(
    run: dict[str, Any],
    k: int,
    ledger: dict[str, Any],
    fallbacks: dict[str, int],
    rows: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "report": "llm",
        "run": {
            "name": run["name"],
            "uid": run["uid"],
            "model_version": run["model_version"],
            "state": run["state"],
            "tracks_per_request": k,
        },
        "outcomes": outcomes(ledger, fallbacks, rows),
        "tokens": tokens(ledger, rows),
        "sentiment": sentiment_agreement(rows),
        "themes_vs_emotions": themes_vs_emotions(rows),
        "distributions": distributions(rows),
        "packing": comparisons,
    }


def build_for_analyzer(source: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The report of an analyzer's labels without a run (`report llm --analyzer`): the
    same agreement and distribution numbers; no ledger, so no outcomes beyond the
    answers themselves, no tokens paid, no packing."""
    return {
        "report": "llm",
        "run": None,
        "analyzer": {**source, "tracks": len(rows)},
        "outcomes": {
            "llm_results": len(rows),
            "repaired": sum(r["repaired"] for r in rows),
            "truncated": sum(r["truncated"] for r in rows),
            "with_quality": sum(r["quality"] is not None for r in rows),
            "with_complexity": sum(r["complexity"] is not None for r in rows),
        },
        "tokens": {"per_track_stored_mean": stats.mean(_tokens_of(r) for r in rows)},
        "sentiment": sentiment_agreement(rows),
        "themes_vs_emotions": themes_vs_emotions(rows),
        "distributions": distributions(rows),
        "packing": [],
    }
