"""One self-contained HTML file per report: inline CSS, charts as base64 PNG data URIs,
no script and no network resource."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from analyzer_runtime.reports import charts
from analyzer_runtime.reports.trends import Clusters

CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#222}
main{max-width:1180px;margin:0 auto;padding:24px 32px;background:#fff;min-height:100vh}
h1{margin:0 0 4px;font-size:26px}h2{margin:28px 0 8px;font-size:19px;border-bottom:2px solid #2f6fb0;
padding-bottom:4px}.sub{color:#666;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{background:#eef3f9;border-radius:6px;padding:10px 14px;min-width:130px}
.card b{display:block;font-size:20px;color:#2f6fb0}.card span{font-size:12px;color:#555}
table{border-collapse:collapse;font-size:13px;margin:8px 0;min-width:50%}
th,td{border-bottom:1px solid #e2e2e2;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:8px 0;border:1px solid #eee}
.note{color:#666;font-size:12px}.tag{display:inline-block;background:#eef;border-radius:3px;
padding:0 4px;margin:1px;font-size:12px}
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="note">({escape(alt)}: no data)</p>'
    return f'<img alt="{escape(alt)}" src="{data_uri(png)}">'


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 100 else f"{v + 0.0:.3f}".replace("-0.000", "0.000")
    return str(v)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    h = "".join(f"<th>{escape(c)}</th>" for c in head)
    body = []
    for r in rows:
        cells = []
        for v in r:
            if isinstance(v, int | float) or v is None:
                cells.append(f'<td class="n">{escape(_fmt(v))}</td>')
            else:
                cells.append(f"<td>{v}</td>")  # already HTML (escaped by the caller)
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{h}</tr>{''.join(body)}</table>"


def _tags(items: Iterable[str]) -> str:
    return "".join(f'<span class="tag">{escape(t)}</span>' for t in items) or "–"


def _cards(pairs: Sequence[tuple[str, Any]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><b>{escape(v if isinstance(v, str) else _fmt(v))}</b><span>{escape(k)}</span></div>'
            for k, v in pairs
        )
        + "</div>"
    )


def _page(title: str, subtitle: str, body: str) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{escape(title)}</h1><p class="sub">{escape(subtitle)} · generated {now}</p>'
        f"{body}</main></body></html>\n"
    )


def trends_html(report: dict[str, Any], cl: Clusters) -> str:
    charts.require()
    by = report["by"]
    counts = report["analyzed_tracks"]
    groups = report["groups"]
    parts = [
        _cards(
            [
                ("groups (" + by + ")", len(groups)),
                ("algorithmic tracks", counts.get("algorithmic", 0)),
                ("emotion tracks", counts.get("emotion", 0)),
                ("llm tracks", counts.get("llm", 0)),
                ("clusters", report["clusters"]["k"]),
            ]
        ),
        "<h2>Sentiment</h2>",
        _img(charts.sentiment_over_groups(report), "sentiment by " + by),
        "<h2>Themes</h2>",
    ]
    if report["theme_matrix"]["themes"]:
        parts.append(_img(charts.theme_heatmap(report), "LLM themes"))
    else:
        parts.append('<p class="note">No LLM results: themes below are TF-IDF terms.</p>')
    parts.append(_img(charts.emotion_heatmap(report), "NRC emotions"))
    c = report["clusters"]
    parts += [
        "<h2>Clusters</h2>",
        f'<p class="note">k-means (k={c["k"]}) on {escape(c["source"])} of a sample of'
        f" {c['sample']} of {c['population']} tracks (order md5(id || {c['seed']}),"
        " deterministic); top terms are the TF-IDF terms most above the sample's mean.</p>",
        _img(charts.cluster_scatter(report, cl.points, cl.labels), "clusters"),
        _table(
            ["#", "size", "share", "top terms", "VADER", "LLM themes"],
            (
                [
                    k["id"],
                    k["size"],
                    k["share"],
                    _tags(k["top_terms"]),
                    k["vader_compound_mean"],
                    _tags(k["llm_themes"]),
                ]
                for k in c["clusters"]
            ),
        ),
    ]
    analyzers = report.get("analyzers") or {}
    if analyzers:
        parts += [
            "<h2>Analyzers in this database</h2>",
            '<p class="note">Tracks with a result, per analyzer type. Read as LLM labels: '
            + escape(", ".join(report.get("llm_analyzers") or []))
            + " (adopted ones through the legacy mapping, README &quot;Legacy labels&quot;);"
            " a legacy rule-based or emotion analyzer is only counted.</p>",
            _table(
                ["analyzer_type", "tracks", "legacy", "read as"],
                (
                    [
                        escape(name),
                        a["tracks"],
                        "yes" if a["legacy"] else "no",
                        escape(a["read_as"] or "counted only"),
                    ]
                    for name, a in analyzers.items()
                ),
            ),
        ]
    parts.append(f"<h2>Per {escape(by)}</h2>")
    parts.append(
        _table(
            [by, "tracks", "VADER", "LLM quality", "themes", "source", "TF-IDF terms"],
            (
                [
                    escape(g["group"]),
                    g["tracks"],
                    g["sentiment"]["vader_compound_mean"],
                    g["llm_quality_mean"],
                    _tags(t["theme"] for t in g["themes"]),
                    escape(g["themes_source"]),
                    _tags(g["tfidf_terms"][:6]),
                ]
                for g in groups
            ),
        )
    )
    return _page(
        f"rap-analyzer: trends by {by}",
        "themes, sentiment and clusters from the stored results",
        "".join(parts),
    )


def _agreement_parts(report: dict[str, Any], rows: Sequence[dict[str, Any]]) -> list[str]:
    """The sections both forms of the llm report share: sentiment, themes, scores."""
    s = report["sentiment"]
    return [
        "<h2>Sentiment: LLM vs VADER and NRC</h2>",
        f'<p class="note">LLM label as {escape(s["llm_score"])} against the VADER compound of'
        f" the algorithmic analyzer on {s['tracks']} tracks: Pearson"
        f" {_fmt(s['vs_vader_compound']['pearson'])}, Spearman"
        f" {_fmt(s['vs_vader_compound']['spearman'])}; same label as VADER on"
        f" {_fmt(s['label_agreement_vader'])} of the tracks both call positive/negative/neutral,"
        f" as NRC on {_fmt(s['label_agreement_emotion'])}.</p>",
        _img(charts.sentiment_vs_vader(report, rows), "sentiment vs VADER"),
        "<h2>Themes vs NRC emotions</h2>",
        _img(charts.themes_emotions_heatmap(report), "themes vs emotions"),
        "<h2>Score distributions</h2>",
        _img(charts.score_distributions(report), "score distributions"),
    ]


def _label_quality_parts(report: dict[str, Any]) -> list[str]:
    """Schema-valid rate, reference agreement, self-consistency, cascade agreement."""
    q = report.get("label_quality") or {}
    parts = ["<h2>Label quality</h2>"]
    v = q.get("schema_validity")
    if v is not None:
        parts += [
            f'<p class="note">Of {v["answered_tracks"]} tracks the model answered, schema-valid'
            f" at the first request {_pct(v['share_first'])}, only at the second (a repair,"
            f" or a retry with more tokens) {_pct(v['share_after_second'])}, never"
            f" {_pct(v['share_never'])}. Not in it: {v['no_answer_failures']} tracks the"
            f" provider never answered, {v['fallbacks']} fallbacks.</p>",
        ]
    ref = q.get("reference")
    if ref is not None:
        s = ref["sentiment"]
        parts += [
            "<h3>Agreement with the reference set</h3>",
            _cards(
                [
                    ("reference rows", ref["rows"]),
                    ("rows matching a track", ref["matched_rows"]),
                    ("with an LLM label", ref["with_llm_label"]),
                    ("Cohen's κ (sentiment)", s["kappa"]),
                    ("accuracy (sentiment)", _pct(s["accuracy"])),
                    ("themes Jaccard", ref["themes_jaccard_mean"]),
                ]
            ),
            f'<p class="note">{escape(ref["source"])}: {ref["unmatched_rows"]} rows name no'
            f" track of this database; quality |Δ| {_fmt(ref['quality']['mean_abs_diff'])} over"
            f" {ref['quality']['n']} rows. Rows: reference label, columns: the LLM's.</p>",
            _table(
                ["reference / llm", *s["confusion"]["counts"]],
                ([escape(a), *row.values()] for a, row in s["confusion"]["counts"].items()),
            ),
        ]
    c = q.get("consistency")
    if c is not None:
        t = c["tokens"] or {}
        cost = t.get("cost_usd")
        parts += [
            "<h3>Self-consistency</h3>",
            _cards(
                [
                    ("tracks asked again", c["tracks"]),
                    ("times each", c["repeats"]),
                    ("all repeats = stored sentiment", _pct(c["sentiment_all_match"])),
                    ("pairwise sentiment agreement", _pct(c["sentiment_pairwise"])),
                    ("themes Jaccard vs stored", c["themes_jaccard_vs_stored"]),
                ]
            ),
            f'<p class="note">The same tracks asked again with the run\'s settings:'
            f" {c['answered_repeats']} answers, {c['failed_repeats']} not answered. An extra"
            f" spend: {t.get('prompt', 0)} prompt + {t.get('completion', 0)} completion tokens"
            + (f", ${cost:.4f}" if cost is not None else " (no price known)")
            + ".</p>",
        ]
    k = q.get("cascade")
    if k is not None:
        parts += [
            "<h3>Cascade vs LLM on the tracks it kept</h3>",
            f'<p class="note">Kept by the cascade: {escape(str(k["kept"]))}; {k["tracks"]} of'
            " them also have an LLM answer"
            f" ({escape(', '.join(f'{v}: {n}' for v, n in k['llm_versions'].items()) or '-')})."
            f" Same sentiment on {_pct(k['sentiment_agreement'])} of {k['sentiment_tracks']}"
            f" (κ {_fmt(k['sentiment_kappa'])}); quality |Δ| {_fmt(k['quality_mean_abs_diff'])},"
            f" within 1 on {_pct(k['quality_within_1'])} of {k['quality_tracks']}.</p>",
        ]
    if len(parts) == 1:
        parts.append(
            '<p class="note">No run ledger, reference set (--reference) or repeats'
            " (--consistency).</p>"
        )
    return parts


def llm_analyzer_html(report: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """`report llm --analyzer`: an analyzer's labels (an adopted legacy LLM's too)."""
    charts.require()
    a = report["analyzer"]
    o = report["outcomes"]
    s = report["sentiment"]
    which = f"version {a['model_version']}" if a["model_version"] else "all versions"
    parts = [
        _cards(
            [
                ("tracks labelled", a["tracks"]),
                ("with a quality label", o["with_quality"]),
                ("with a complexity label", o["with_complexity"]),
                ("compared with VADER", s["tracks"]),
                ("Spearman vs VADER", s["vs_vader_compound"]["spearman"]),
            ]
        ),
        '<p class="note">'
        + (
            "Adopted from the original platform: labels read through the legacy mapping"
            " (README &quot;Legacy labels&quot;). "
            if a["legacy"]
            else ""
        )
        + "No run ledger: no outcomes, tokens paid or packing comparison.</p>",
        _table(
            ["model_version", "results"],
            ([escape(v), n] for v, n in a["versions"].items()),
        ),
        *_agreement_parts(report, rows),
        *_label_quality_parts(report),
    ]
    return _page(
        f"rap-analyzer: LLM agreement of analyzer {a['analyzer_type']}",
        f"{which} · {a['tracks']} tracks",
        "".join(parts),
    )


def llm_html(report: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    if report["run"] is None:
        return llm_analyzer_html(report, rows)
    charts.require()
    run = report["run"]
    o = report["outcomes"]
    t = report["tokens"]
    s = report["sentiment"]
    parts = [
        _cards(
            [
                ("tracks in run", o["items"]),
                ("LLM answers", o["llm_results"]),
                ("fell back", _pct(o["share_fallback"])),
                ("failed", _pct(o["share_failed"])),
                ("tokens / answered track", t["per_answered_track"]),
                ("Spearman vs VADER", s["vs_vader_compound"]["spearman"]),
            ]
        ),
        *_agreement_parts(report, rows),
        "<h2>Outcomes</h2>",
        _table(
            ["state", "items"],
            ([escape(k), v] for k, v in sorted(o["states"].items())),
        ),
        f'<p class="note">fallback results: {escape(str(o["fallback_results"] or "none"))};'
        f" repaired answers {o['repaired']}, truncated {o['truncated']};"
        f" tokens {t['prompt_total']} prompt + {t['completion_total']} completion.</p>",
    ]
    if o["failure_reasons"]:
        parts.append(
            _table(
                ["failure reason", "tracks"],
                ([escape(r["reason"]), r["count"]] for r in o["failure_reasons"]),
            )
        )
    parts += _label_quality_parts(report)
    parts.append("<h2>Packing: tracksPerRequest</h2>")
    if report["packing"]:
        parts.append(
            _table(
                [
                    "other version",
                    "k this/other",
                    "tracks",
                    "|Δ quality|",
                    "|Δ complexity|",
                    "sentiment agree",
                    "theme Jaccard",
                    "tokens/track this",
                    "tokens/track other",
                ],
                (
                    [
                        escape(p["other_model_version"]),
                        f"{p['tracks_per_request']['this']} / {p['tracks_per_request']['other']}",
                        p["tracks"],
                        p["quality_mean_abs_diff"],
                        p["complexity_mean_abs_diff"],
                        p["sentiment_agreement"],
                        p["theme_jaccard_mean"],
                        p["tokens_per_track"]["this"],
                        p["tokens_per_track"]["other"],
                    ]
                    for p in report["packing"]
                ),
            )
        )
    else:
        parts.append(
            '<p class="note">No other llm run with a different tracksPerRequest analyzed'
            " these tracks.</p>"
        )
    return _page(
        f"rap-analyzer: LLM agreement of run {run['name']}",
        f"{run['model_version']} · tracksPerRequest {run['tracks_per_request']} ·"
        f" {o['items'] - o['states'].get('pending', 0)}/{o['items']} items processed",
        "".join(parts),
    )
