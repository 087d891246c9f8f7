"""The reports' charts: matplotlib (Agg, no display) figures as PNG bytes.

Needs the `reports` extra; `MissingMatplotlib` says how to install it."""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from typing import Any

INSTALL_HINT = "pip install 'rap-analyzer[reports]'"
DPI = 100
PALETTE = ["#2f6fb0", "#d9534f", "#8a8a8a", "#e8a33d", "#5cb85c", "#8e6bbf", "#4fb6c7", "#c7619d"]


class MissingMatplotlib(RuntimeError):
    def __init__(self) -> None:
        super().__init__(f"the HTML report needs matplotlib: {INSTALL_HINT} (--json works without)")


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingMatplotlib() from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )
    return plt


def require() -> None:
    """Raise MissingMatplotlib before any work when the extra is not installed."""
    _plt()


def _png(fig: Any) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _labels(groups: Sequence[str], by: str) -> tuple[list[int], list[str]]:
    return list(range(len(groups))), [str(g) for g in groups]


# ---- trends ---------------------------------------------------------------------------


def sentiment_over_groups(report: dict[str, Any]) -> bytes | None:
    groups = report["groups"]
    if not groups:
        return None
    plt = _plt()
    by = report["by"]
    x, names = _labels([g["group"] for g in groups], by)
    # Years are a sequence (lines); artists are not (markers only).
    line, dashed = ("-", "--") if by == "year" else ("", "")
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6.4), sharex=True)
    compound = [g["sentiment"]["vader_compound_mean"] for g in groups]
    polarity = [g["sentiment"]["emotion_polarity_mean"] for g in groups]
    if any(v is not None for v in compound):
        ax1.plot(
            x,
            [v if v is not None else float("nan") for v in compound],
            "o" + line,
            color=PALETTE[0],
            label="VADER compound (mean)",
        )
    if any(v is not None for v in polarity):
        ax1.plot(
            x,
            [v if v is not None else float("nan") for v in polarity],
            "s" + dashed,
            color=PALETTE[3],
            label="NRC polarity (mean)",
        )
    ax1.axhline(0, color="#444", linewidth=0.8)
    ax1.set_ylabel("score (-1 .. 1)")
    ax1.set_title(f"Sentiment by {by}")
    ax1.legend(loc="upper right", fontsize=9)
    labels: tuple[str, ...] = ("positive", "mixed", "neutral", "negative")
    colours = {
        "positive": PALETTE[4],
        "mixed": PALETTE[3],
        "neutral": PALETTE[2],
        "negative": PALETTE[1],
    }
    source = "llm_labels"
    if not any(g["sentiment"]["llm_labels"] for g in groups):
        source, labels = "vader_labels", ("positive", "neutral", "negative")
    bottom = [0.0] * len(groups)
    for lb in labels:
        vals = [(g["sentiment"][source] or {}).get(lb, 0.0) for g in groups]
        ax2.bar(x, vals, bottom=bottom, color=colours[lb], label=lb, width=0.8)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("share of tracks")
    ax2.set_title(
        "LLM sentiment labels" if source == "llm_labels" else "VADER sentiment labels",
        loc="right",
    )
    ax2.legend(loc="lower left", bbox_to_anchor=(0, 1.08), fontsize=8, ncol=4, frameon=False)
    ax2.set_xticks(
        x, names, rotation=60 if len(x) > 12 or by == "artist" else 0, ha="right", fontsize=8
    )
    return _png(fig)


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    values: Sequence[Sequence[float | None]],
    title: str,
    cbar: str,
    *,
    cmap: str = "viridis",
    center: float | None = None,
    annotate: bool = False,
) -> bytes | None:
    if not rows or not cols:
        return None
    import numpy as np

    plt = _plt()
    m = np.array([[np.nan if v is None else v for v in r] for r in values], dtype=float)
    if np.all(np.isnan(m)):
        return None
    fig, ax = plt.subplots(figsize=(min(13, 2.5 + 0.45 * len(cols)), 1.2 + 0.42 * len(rows)))
    kw: dict[str, Any] = {}
    if center is not None:
        from matplotlib.colors import TwoSlopeNorm

        lo, hi = np.nanmin(m), np.nanmax(m)
        kw["norm"] = TwoSlopeNorm(
            vcenter=center, vmin=min(lo, center - 1e-6), vmax=max(hi, center + 1e-6)
        )
    im = ax.imshow(m, aspect="auto", cmap=cmap, **kw)
    ax.set_xticks(range(len(cols)), [str(c) for c in cols], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=9)
    ax.grid(False)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=cbar, fraction=0.03)
    if annotate:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if not np.isnan(m[i, j]):
                    r, g, b, _ = im.cmap(im.norm(m[i, j]))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                    ax.text(
                        j,
                        i,
                        f"{m[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if dark else "black",
                    )
    return _png(fig)


def theme_heatmap(report: dict[str, Any]) -> bytes | None:
    tm = report["theme_matrix"]
    return heatmap(
        tm["themes"],
        tm["groups"],
        tm["shares"],
        f"LLM themes by {report['by']}",
        "share of LLM-analyzed tracks",
    )


def emotion_heatmap(report: dict[str, Any]) -> bytes | None:
    groups = report["groups"]
    if not groups:
        return None
    emotions = list(groups[0]["emotions"])
    values = [[g["emotions"][e] for g in groups] for e in emotions]
    return heatmap(
        emotions,
        [g["group"] for g in groups],
        values,
        f"NRC emotions by {report['by']}",
        "mean score (hits per word)",
        cmap="magma",
    )


def cluster_scatter(
    report: dict[str, Any], points: Sequence[tuple[float, float]], labels: Sequence[int]
) -> bytes | None:
    cl = report["clusters"]
    if not points or not cl["clusters"]:
        return None
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    for c in cl["clusters"]:
        pts = [p for p, lb in zip(points, labels, strict=True) if lb == c["id"]]
        ax1.scatter(
            [p[0] for p in pts],
            [p[1] for p in pts],
            s=10,
            alpha=0.7,
            color=PALETTE[c["id"] % len(PALETTE)],
            label=f"#{c['id']}",
        )
    method = "PCA of embeddings" if cl["source"].startswith("embeddings") else "SVD of TF-IDF"
    ax1.set_title(f"Clusters of {cl['sample']} sampled tracks ({method})")
    ax1.legend(fontsize=8, markerscale=2, loc="best")
    ax1.set_xticks([])
    ax1.set_yticks([])
    ids = [c["id"] for c in cl["clusters"]]
    ax2.barh(
        ids, [c["size"] for c in cl["clusters"]], color=[PALETTE[i % len(PALETTE)] for i in ids]
    )
    ax2.set_yticks(ids, [f"#{i}" for i in ids])
    for c in cl["clusters"]:  # the terms inside the bar: long labels never hit the scatter
        ax2.text(
            0.02 * max(k["size"] for k in cl["clusters"]),
            c["id"],
            ", ".join(c["top_terms"][:3]),
            va="center",
            fontsize=8,
            color="white",
            fontweight="bold",
        )
    ax2.invert_yaxis()
    ax2.set_xlabel("tracks in sample")
    ax2.set_title("Cluster sizes and top terms")
    return _png(fig)


# ---- llm ---------------------------------------------------------------------------------


def score_distributions(report: dict[str, Any]) -> bytes | None:
    d = report["distributions"]
    if not d["quality"]["n"] and not d["complexity"]["n"]:
        return None
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    ax1.bar(d["quality"]["bins"], d["quality"]["counts"], color=PALETTE[0])
    ax1.set_xticks(d["quality"]["bins"])
    ax1.set_title(f"LLM quality (n={d['quality']['n']}, mean {d['quality']['mean']})")
    ax1.set_xlabel("quality (1-10)")
    ax1.set_ylabel("tracks")
    edges = d["complexity"]["edges"]
    ax2.bar(
        [(a + b) / 2 for a, b in itertools.pairwise(edges)],
        d["complexity"]["counts"],
        width=0.09,
        color=PALETTE[5],
    )
    ax2.set_title(f"LLM complexity (n={d['complexity']['n']}, mean {d['complexity']['mean']})")
    ax2.set_xlabel("complexity (0-1)")
    return _png(fig)


def sentiment_vs_vader(report: dict[str, Any], rows: Sequence[dict[str, Any]]) -> bytes | None:
    s = report["sentiment"]
    if not s["tracks"]:
        return None
    plt = _plt()
    from analyzer_runtime.reports.agreement import LLM_LABELS, VADER_LABELS

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    data = [
        [r["compound"] for r in rows if r["sentiment"] == lb and r["compound"] is not None]
        for lb in LLM_LABELS
    ]
    keep = [i for i, d in enumerate(data) if d][::-1]  # positive on top
    ax1.boxplot(
        [data[i] for i in keep], vert=False, patch_artist=True, boxprops={"facecolor": "#cfe0f3"}
    )
    ax1.set_yticks(range(1, len(keep) + 1), [LLM_LABELS[i] for i in keep])
    ax1.axvline(0, color="#444", linewidth=0.8)
    corr = s["vs_vader_compound"]
    ax1.set_title(f"VADER compound by LLM label (Spearman {corr['spearman']})")
    ax1.set_xlabel("VADER compound")
    table = s["confusion"]["counts"]
    m = [[table[a][b] for b in VADER_LABELS] for a in LLM_LABELS]
    im = ax2.imshow(m, cmap="Blues", aspect="auto")
    ax2.grid(False)
    ax2.set_xticks(range(3), [f"vader {b}" for b in VADER_LABELS], fontsize=8)
    ax2.set_yticks(range(4), [f"llm {a}" for a in LLM_LABELS], fontsize=8)
    top = max(max(r) for r in m) or 1
    for i, r in enumerate(m):
        for j, v in enumerate(r):
            ax2.text(
                j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black"
            )
    ax2.set_title("Labels: LLM vs VADER")
    fig.colorbar(im, ax=ax2, fraction=0.04)
    return _png(fig)


def themes_emotions_heatmap(report: dict[str, Any]) -> bytes | None:
    t = report["themes_vs_emotions"]
    values = [[t["lift"][th][e] for e in t["emotions"]] for th in t["themes"]]
    return heatmap(
        t["themes"],
        t["emotions"],
        values,
        "NRC emotion lift by LLM theme",
        "mean score with theme / overall mean",
        cmap="RdBu_r",
        center=1.0,
        annotate=True,
    )
