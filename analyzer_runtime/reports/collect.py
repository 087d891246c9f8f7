"""Glue: read what a report needs (data.py) and compute it (trends.py, agreement.py)."""

from __future__ import annotations

from typing import Any

import asyncpg

from analyzer_runtime.reports import ReportError, agreement, data, trends

DEFAULT_SAMPLE = 2000
DEFAULT_SEED = 15
DEFAULT_K = 6
LYRICS_PER_GROUP = 200
MAX_ARTISTS = 20


async def trends_report(
    conn: asyncpg.Connection,
    by: str = "year",
    *,
    sample: int = DEFAULT_SAMPLE,
    k: int = DEFAULT_K,
    seed: int = DEFAULT_SEED,
    max_groups: int = MAX_ARTISTS,
) -> tuple[dict[str, Any], trends.Clusters]:
    counts = await data.result_counts(conn)
    if not counts:
        raise ReportError(
            "no stored results yet: run an algorithmic, emotion or llm AnalysisRun first"
        )
    rows = await data.group_rows(conn, by, max_groups)
    if not rows:
        what = "a release date" if by == "year" else "an artist"
        raise ReportError(f"no analyzed track has {what}: nothing to group by {by}")
    keys = [r["grp"] for r in rows]
    themes = await data.group_themes(conn, by, keys)
    lyrics = await data.group_lyrics_sample(conn, by, keys, LYRICS_PER_GROUP, seed)
    sampled = await data.cluster_sample(conn, sample, seed)
    return trends.build(
        by, counts, rows, themes, lyrics, sampled, k=k, seed=seed, per_group_sample=LYRICS_PER_GROUP
    )


async def llm_report(
    conn: asyncpg.Connection, name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report, and the rows behind it (the charts draw from them)."""
    run = await data.find_run(conn, name)
    if run is None:
        raise ReportError(f"no run with uid or name {name!r}")
    if run["kind"] != "AnalysisRun" or run["analyzer_type"] != "llm":
        raise ReportError(
            f"run {run['name']!r} is not an llm run (analyzer {run['analyzer_type']!r})"
        )
    if run["compacted_at"] is not None:
        raise ReportError(
            f"run {run['name']!r} was compacted by `rap-analyzer db gc` on"
            f" {run['compacted_at']:%Y-%m-%d}: its per-track ledger is gone (its results are"
            " kept). Report on a run before gc compacts it (db gc --older-than)"
        )
    version = run["model_version"]
    rows = await data.llm_rows(conn, run["id"], version)
    ledger = await data.run_ledger(conn, run["id"])
    fallbacks = await data.fallback_count(conn, run["id"], version)
    if not rows and not fallbacks and not ledger["items"].get("failed"):
        raise ReportError(
            f"run {run['name']!r} has no results yet ({run['state']}): wait for it to process"
            " some tracks"
        )
    k = data.tracks_per_request(run["spec"])
    comparisons = []
    for other in await data.other_llm_versions(conn, run):
        if other["tracks_per_request"] == k:
            continue
        pairs = await data.paired_llm_rows(conn, run["id"], version, other["model_version"])
        if pairs:
            comparisons.append(agreement.packing(k, other, pairs))
    return agreement.build(run, k, ledger, fallbacks, rows, comparisons), rows
