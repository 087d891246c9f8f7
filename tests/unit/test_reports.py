"""The reports' pure computation and rendering (issue 15), without a database."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer_runtime.analyzers.emotion import EMOTIONS
from analyzer_runtime.reports import agreement, stats, text, trends
from analyzer_runtime.reports.data import ClusterSample

WORDS = {
    0: "money cash bank rich gold diamond chain",
    1: "love heart baby kiss tender darling rose",
    2: "gun street fight blood police war enemy",
}


def _lyrics(i: int) -> str:
    topic = WORDS[i % 3].split()
    return " ".join(topic[(i + j) % len(topic)] for j in range(30)) + f" track{i}"


def _sample(n: int = 60) -> ClusterSample:
    return ClusterSample(
        source="tfidf",
        track_ids=list(range(n)),
        lyrics=[_lyrics(i) for i in range(n)],
        vectors=None,
        compound=[0.1 * (i % 3) for i in range(n)],
        llm_themes=[[["money"], ["love"], ["violence"]][i % 3] for i in range(n)],
        population=n,
    )


def _group_row(grp: str, n: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "grp": grp, "tracks": n, "n_algorithmic": n, "compound": 0.1, "alg_positive": n,
        "alg_negative": 0, "alg_neutral": 0, "n_emotion": n, "polarity": 0.2, "n_llm": n,
        "llm_positive": n - 1, "llm_negative": 1, "llm_neutral": 0, "llm_mixed": 0,
        "llm_quality": 6.5,
    }  # fmt: skip
    row |= {f"emo_{e}": 0.01 * (i + 1) for i, e in enumerate(EMOTIONS)}
    return row


def _trends_report() -> tuple[dict[str, Any], trends.Clusters]:
    rows = [_group_row("2001", 30), _group_row("2002", 30)]
    themes = {"2001": {"money": 20, "love": 5}, "2002": {"love": 25}}
    lyrics = {"2001": [_lyrics(0)], "2002": [_lyrics(1)]}
    return trends.build(
        "year", {"algorithmic": 60, "llm": 60}, rows, themes, lyrics, _sample(),
        k=3, seed=7, per_group_sample=200,
    )  # fmt: skip


def test_stats() -> None:
    assert stats.correlations([1, 2, 3, 4], [2, 4, 6, 9])["spearman"] == 1.0
    assert stats.correlations([1, 1, 1], [1, 2, 3])["pearson"] is None  # constant: undefined
    assert stats.histogram([0.0, 0.5, 1.0, 1.0], [0, 0.5, 1]) == [1, 3]
    assert stats.jaccard(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)
    assert stats.mean([None, 1, 2]) == 1.5 and stats.mean([]) is None


def test_tfidf_terms_leave_out_filler_and_set_groups_apart() -> None:
    terms = text.top_terms_per_document(
        ["yeah yeah i'm money cash bank", "yeah ain't love heart kiss"], n=3
    )
    assert set(terms[0]) <= {"money", "cash", "bank"} and set(terms[1]) <= {"love", "heart", "kiss"}


def test_clusters_find_the_topics_deterministically() -> None:
    a = trends.clusters(_sample(), k=3, seed=1)
    b = trends.clusters(_sample(), k=3, seed=1)
    assert a.labels == b.labels and a.summary == b.summary
    sizes = [c["size"] for c in a.summary["clusters"]]
    assert sizes == [20, 20, 20]
    tops = {frozenset(c["llm_themes"]) for c in a.summary["clusters"]}
    assert tops == {frozenset(["money"]), frozenset(["love"]), frozenset(["violence"])}
    assert all(c["top_terms"] for c in a.summary["clusters"])


def test_trend_groups_prefer_llm_themes() -> None:
    report, _ = _trends_report()
    g1, _ = report["groups"]
    assert g1["themes_source"] == "llm" and g1["themes"][0] == {"theme": "money", "share": 0.6667}
    assert report["theme_matrix"]["themes"] == ["love", "money"]
    assert report["theme_matrix"]["shares"][0] == [round(5 / 30, 4), round(25 / 30, 4)]
    json.dumps(report)  # JSON-ready


def test_groups_without_llm_results_get_tfidf_terms() -> None:
    rows = [_group_row("A", 10) | {"n_llm": 0}, _group_row("B", 10) | {"n_llm": 0}]
    lyrics = {"A": [_lyrics(0)], "B": [_lyrics(1)]}
    a, b = trends.groups_summary(rows, {}, lyrics)
    assert a["themes_source"] == "tfidf" and {t["theme"] for t in a["themes"]} <= set(
        WORDS[0].split()
    )
    assert {t["theme"] for t in b["themes"]} <= set(WORDS[1].split())
    assert trends.theme_matrix([a, b], {})["themes"] == []


def _llm_row(i: int, sentiment: str, compound: float, vader: str, **kw: Any) -> dict[str, Any]:
    return {
        "track_id": i, "sentiment": sentiment, "confidence": 0.8, "themes": kw.get("themes", ["money"]),
        "complexity": kw.get("complexity", 0.5), "quality": kw.get("quality", 7.0),
        "tokens_prompt": 100, "tokens_completion": 20, "pack": 1, "repaired": False,
        "truncated": False, "compound": compound, "vader_label": vader, "alg_complexity": 0.4,
        "emo_label": vader, "emo_dominant": "joy",
        "emotions": {e: (0.02 if e == "joy" and sentiment == "positive" else 0.01) for e in EMOTIONS},
    }  # fmt: skip


def test_sentiment_agreement_and_confusion() -> None:
    rows = [
        _llm_row(1, "positive", 0.5, "positive", themes=["love"]),
        _llm_row(2, "positive", 0.3, "positive", themes=["love"]),
        _llm_row(3, "negative", -0.4, "negative"),
        _llm_row(4, "mixed", 0.1, "positive"),
        _llm_row(5, "neutral", -0.6, "negative"),
    ]
    s = agreement.sentiment_agreement(rows)
    assert s["confusion"]["counts"]["positive"]["positive"] == 2
    assert s["confusion"]["counts"]["mixed"]["positive"] == 1
    assert s["label_agreement_vader"] == 0.75  # 3 of the 4 with a comparable label
    assert s["vs_vader_compound"]["spearman"] > 0.5
    t = agreement.themes_vs_emotions(rows)
    assert t["strongest_emotion"]["love"] == "joy" and t["lift"]["love"]["joy"] > 1


def test_packing_numbers() -> None:
    a = [_llm_row(i, "positive", 0.1, "positive", quality=6, themes=["a", "b"]) for i in range(4)]
    b = [dict(r) for r in a]
    b[0] |= {"quality": 8, "sentiment": "mixed", "themes": ["a"], "tokens_prompt": 40}
    other = {"model_version": "v@k4", "run": "k4", "tracks_per_request": 4}
    p = agreement.packing(1, other, list(zip(a, b, strict=True)))
    assert p["tracks"] == 4 and p["quality_mean_abs_diff"] == 0.5
    assert p["sentiment_agreement"] == 0.75
    assert p["theme_jaccard_mean"] == pytest.approx((0.5 + 3) / 4, abs=1e-4)
    assert p["tokens_per_track"] == {"this": 120.0, "other": 105.0}


@pytest.mark.slow  # matplotlib renders every chart
def test_trends_html_is_self_contained_with_real_charts() -> None:
    pytest.importorskip("matplotlib")
    import numpy as np
    from PIL import Image

    from analyzer_runtime.reports.html import trends_html

    report, cl = _trends_report()
    page = trends_html(report, cl)
    assert "<script" not in page and "http" not in page
    assert not re.search(r'(src|href)="(?!data:)', page)
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pngs) == 4  # sentiment, themes, emotions, clusters
    import io

    for b64 in pngs:
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        px = np.asarray(img.convert("RGB")).reshape(-1, 3)
        assert img.format == "PNG" and len(np.unique(px, axis=0)) > 30


@pytest.mark.slow  # a Python without matplotlib
def test_without_matplotlib_html_exits_2_and_json_still_computes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from analyzer_runtime.cli import app

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    r = CliRunner().invoke(app, ["report", "trends", "--out", "x.html"])
    assert r.exit_code == 2
    assert "pip install 'rap-analyzer[reports]'" in r.output.replace("\n", "")
    r = CliRunner().invoke(app, ["report", "llm", "--run", "x"])
    assert r.exit_code == 2
    # The computation behind --json never imports matplotlib.
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from tests.unit.test_reports import _trends_report\n"
        "import json; print(json.dumps(_trends_report()[0])[:20])\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
