"""The trend report's numbers, from rows `data.py` read: sentiment, emotions and themes
per group (release year or artist), and clusters of a sample of tracks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from analyzer_runtime.analyzers.emotion import EMOTIONS
from analyzer_runtime.reports import stats, text
from analyzer_runtime.reports.data import ClusterSample

LLM_LABELS = ("positive", "negative", "neutral", "mixed")
VADER_LABELS = ("positive", "negative", "neutral")
TOP_THEMES = 6  # per group
TOP_TERMS = 8


def groups_summary(
    rows: list[dict[str, Any]],
    themes: dict[str, dict[str, int]],
    lyrics: dict[str, list[str]],
) -> list[dict[str, Any]]:
    """One entry per group: counts, sentiment, emotions, themes (LLM themes where the
    group has LLM results, else its TF-IDF terms against the other groups)."""
    keys = [r["grp"] for r in rows]
    terms = dict(
        zip(
            keys,
            text.top_terms_per_document([" ".join(lyrics.get(k, [])) for k in keys], TOP_TERMS),
            strict=True,
        )
    )
    out = []
    for r in rows:
        k = r["grp"]
        n_llm = r["n_llm"]
        counted = themes.get(k, {})
        top = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_THEMES]
        entry = {
            "group": k,
            "tracks": r["tracks"],
            "analyzed": {
                "algorithmic": r["n_algorithmic"],
                "emotion": r["n_emotion"],
                "llm": n_llm,
            },
            "sentiment": {
                "vader_compound_mean": stats.clean(r["compound"]),
                "vader_labels": _shares({lb: r[f"alg_{lb}"] for lb in VADER_LABELS}),
                "emotion_polarity_mean": stats.clean(r["polarity"]),
                "llm_labels": _shares({lb: r[f"llm_{lb}"] for lb in LLM_LABELS}),
            },
            "llm_quality_mean": stats.clean(r["llm_quality"]),
            "emotions": {e: stats.clean(r[f"emo_{e}"]) for e in EMOTIONS},
            "themes_source": "llm" if top else "tfidf",
            "themes": (
                [{"theme": t, "share": round(c / n_llm, 4)} for t, c in top]
                if top
                else [{"theme": t, "share": None} for t in terms.get(k, [])[:TOP_THEMES]]
            ),
            "tfidf_terms": terms.get(k, []),
        }
        out.append(entry)
    return out


def _shares(counts: dict[str, int]) -> dict[str, float] | None:
    total = sum(counts.values())
    if not total:
        return None
    return {k: round(v / total, 4) for k, v in counts.items()}


def theme_matrix(
    groups: list[dict[str, Any]], themes: dict[str, dict[str, int]], top: int = 10
) -> dict[str, Any]:
    """Share of each group's LLM-analyzed tracks with each of the `top` commonest
    themes overall (rows: themes, columns: groups)."""
    total: Counter[str] = Counter()
    for counted in themes.values():
        total.update(counted)
    names = [t for t, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    cols = [g["group"] for g in groups]
    values = [
        [
            round(themes.get(g["group"], {}).get(t, 0) / g["analyzed"]["llm"], 4)
            if g["analyzed"]["llm"]
            else None
            for g in groups
        ]
        for t in names
    ]
    return {"themes": names, "groups": cols, "shares": values}


@dataclass(slots=True)
class Clusters:
    summary: dict[str, Any]
    points: list[tuple[float, float]] = field(default_factory=list)  # 2-D projection
    labels: list[int] = field(default_factory=list)


def clusters(sample: ClusterSample, k: int, seed: int) -> Clusters:
    """k-means over the sample (embeddings when stored, else TF-IDF of the lyrics),
    each cluster with its size, its distinctive TF-IDF terms, mean VADER compound and
    commonest LLM themes; plus a 2-D projection (PCA / SVD) for the chart."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.preprocessing import normalize

    n = len(sample.track_ids)
    base = {
        "source": sample.source,
        "sample": n,
        "population": sample.population,
        "seed": seed,
        "k": 0,
        "clusters": [],
    }
    if n < 4:
        return Clusters(base)
    k = max(2, min(k, n // 3))
    vec = text.vectorizer(min_df=2 if n >= 50 else 1, max_features=5000)
    try:
        tfidf = vec.fit_transform(sample.lyrics)
    except ValueError:
        tfidf = None
    if sample.vectors is not None and len(sample.vectors):
        x = normalize(np.asarray(sample.vectors, dtype=np.float64))
        points = PCA(n_components=2, random_state=seed).fit_transform(x)
    elif tfidf is not None and tfidf.shape[1] >= 3:
        x = tfidf
        points = TruncatedSVD(n_components=2, random_state=seed).fit_transform(x)
    else:
        return Clusters(base)
    labels = KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(x)
    vocab = vec.get_feature_names_out() if tfidf is not None else []
    overall = np.asarray(tfidf.mean(axis=0)).ravel() if tfidf is not None else None
    found: list[dict[str, Any]] = []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if not len(idx):
            continue
        terms: list[str] = []
        if tfidf is not None and overall is not None:
            lift = np.asarray(tfidf[idx].mean(axis=0)).ravel() - overall
            top = np.argsort(-lift, kind="stable")[:TOP_TERMS]
            terms = [str(vocab[j]) for j in top if lift[j] > 0]
        themes: Counter[str] = Counter()
        for i in idx:
            themes.update(sample.llm_themes[i])
        found.append(
            {
                "size": len(idx),
                "share": round(len(idx) / n, 4),
                "top_terms": terms,
                "vader_compound_mean": stats.mean(sample.compound[i] for i in idx),
                "llm_themes": [t for t, _ in themes.most_common(4)],
            }
        )
    # Biggest first, numbered in that order (stable across runs with the same seed).
    order = sorted(range(len(found)), key=lambda i: -found[i]["size"])
    renumber = {old: new for new, old in enumerate(order)}
    summary = {**base, "k": k, "clusters": [{"id": j, **found[i]} for j, i in enumerate(order)]}
    kept = sorted({int(v) for v in labels})
    remap = {c: renumber[kept.index(c)] for c in kept}
    return Clusters(
        summary,
        points=[(float(a), float(b)) for a, b in points],
        labels=[remap[int(v)] for v in labels],
    )


def build(
    by: str,
    counts: dict[str, int],
    rows: list[dict[str, Any]],
    themes: dict[str, dict[str, int]],
    lyrics: dict[str, list[str]],
    sample: ClusterSample,
    *,
    k: int,
    seed: int,
    per_group_sample: int,
) -> tuple[dict[str, Any], Clusters]:
    """The whole report as a JSON-ready dict, and the cluster projection for charts."""
    groups = groups_summary(rows, themes, lyrics)
    cl = clusters(sample, k, seed)
    report = {
        "report": "trends",
        "by": by,
        "analyzed_tracks": counts,
        "groups": groups,
        "theme_matrix": theme_matrix(groups, themes),
        "clusters": cl.summary,
        "sampling": {
            "lyrics_per_group_for_terms": per_group_sample,
            "cluster_sample": cl.summary["sample"],
            "seed": seed,
            "order": "md5(track id || seed)",
        },
    }
    return report, cl
