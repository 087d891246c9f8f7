"""Glue: read what a report needs (data.py) and compute it (trends.py, agreement.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from analyzer_runtime.legacy_labels import DEFAULT_LLM_ANALYZERS, LEGACY_ANALYZERS
from analyzer_runtime.reports import ReportError, agreement, data, label_quality, trends
from analyzer_runtime.reports.label_quality import ReferenceRow

DEFAULT_SAMPLE = 2000
DEFAULT_SEED = 15
DEFAULT_K = 6
LYRICS_PER_GROUP = 200
MAX_ARTISTS = 20
DEFAULT_REPEATS = 2


async def trends_report(
    conn: asyncpg.Connection,
    by: str = "year",
    *,
    sample: int = DEFAULT_SAMPLE,
    k: int = DEFAULT_K,
    seed: int = DEFAULT_SEED,
    max_groups: int = MAX_ARTISTS,
    llm_analyzers: Sequence[str] = DEFAULT_LLM_ANALYZERS,
) -> tuple[dict[str, Any], trends.Clusters]:
    """`llm_analyzers`: the analyzer types whose results count as LLM labels, in order
    of preference (default: `llm`, then the adopted qwen-3-4b-fp8, gemma-3-27b-it,
    ollama:llama3.2:3b)."""
    llm_types = list(dict.fromkeys(llm_analyzers))
    by_analyzer = await data.analyzer_counts(conn)
    counts = await data.result_counts(conn, llm_types, by_analyzer)
    if not counts:
        raise ReportError(
            "no stored results yet: run an algorithmic, emotion or llm AnalysisRun first"
            + (
                f" (this database has results of {', '.join(by_analyzer)}; name an LLM one"
                " with --llm-analyzer)"
                if by_analyzer
                else ""
            )
        )
    rows = await data.group_rows(conn, by, max_groups, llm_types)
    if not rows:
        what = "a release date" if by == "year" else "an artist"
        raise ReportError(f"no analyzed track has {what}: nothing to group by {by}")
    keys = [r["grp"] for r in rows]
    themes = await data.group_themes(conn, by, keys, llm_types)
    lyrics = await data.group_lyrics_sample(conn, by, keys, LYRICS_PER_GROUP, seed)
    sampled = await data.cluster_sample(conn, sample, seed, llm_types)
    report, cl = trends.build(
        by, counts, rows, themes, lyrics, sampled, k=k, seed=seed, per_group_sample=LYRICS_PER_GROUP
    )
    report["llm_analyzers"] = llm_types
    read_as = {"algorithmic": "algorithmic", "emotion": "emotion"} | dict.fromkeys(llm_types, "llm")
    # Every analyzer with results, and what the report read it as (None: counted only
    # here; a legacy rule-based or emotion model is another instrument than ours).
    report["analyzers"] = {
        name: {
            "tracks": n,
            "legacy": name in LEGACY_ANALYZERS,
            "kind": LEGACY_ANALYZERS.get(name, name),
            "read_as": read_as.get(name),
        }
        for name, n in by_analyzer.items()
    }
    return report, cl


async def llm_report(
    conn: asyncpg.Connection,
    name: str,
    *,
    reference: Reference | None = None,
    consistency: int = 0,
    repeats: int = DEFAULT_REPEATS,
    pool: asyncpg.Pool | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report, and the rows behind it (the charts draw from them). `consistency`
    > 0 asks that many of the run's tracks again `repeats` times (through `pool`: the
    run's global rate limit takes connections of its own)."""
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
    fallbacks = await data.stood_in_count(conn, run["id"], version, "fallback_for")
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
    report = agreement.build(run, k, ledger, fallbacks, rows, comparisons)
    failures: dict[str, int] = {}
    for reason, n in (await data.failure_reasons_all(conn, run["id"])).items():
        kind = label_quality.failure_kind(reason)
        failures[kind] = failures.get(kind, 0) + n
    quality: dict[str, Any] = {
        "schema_validity": label_quality.schema_validity(rows, failures, sum(fallbacks.values())),
        "reference": await _reference(conn, reference, rows),
        "consistency": None,
        "cascade": None,
    }
    kept = await data.stood_in_count(conn, run["id"], version, "cascade_for")
    if kept:
        pairs = await data.cascade_pairs(conn, run["id"], version)
        quality["cascade"] = {
            "kept": kept,
            **label_quality.cascade_agreement(pairs),
            "llm_versions": dict(Counter(b["version"] for _, b in pairs)),
        }
    if consistency > 0:
        if pool is None:
            raise ValueError("consistency needs a pool")
        from analyzer_runtime.reports.consistency import ask_again

        sample = await data.consistency_sample(conn, run["id"], version, consistency, DEFAULT_SEED)
        if not sample:
            raise ReportError(f"run {run['name']!r} has no llm answers to ask again")
        samples, tokens = await ask_again(pool, run, sample, repeats)
        quality["consistency"] = label_quality.consistency(samples, repeats=repeats, tokens=tokens)
    report["label_quality"] = quality
    return report, rows


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference label set read from `source` (reference.load)."""

    source: str
    rows: list[ReferenceRow]


async def _reference(
    conn: asyncpg.Connection, ref: Reference | None, rows: list[dict[str, Any]]
) -> dict[str, Any] | None:
    if ref is None:
        return None
    by_id = {r.line: r.track_id for r in ref.rows if r.track_id is not None}
    by_name = {
        r.line: (r.artist, r.title)
        for r in ref.rows
        if r.track_id is None and r.artist is not None and r.title is not None
    }
    matched = await data.match_reference(conn, by_id, by_name)
    return label_quality.reference_agreement(
        ref.rows, matched, {r["track_id"]: r for r in rows}, source=ref.source
    )


async def llm_analyzer_report(
    conn: asyncpg.Connection,
    analyzer: str,
    version: str | None = None,
    *,
    reference: Reference | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The agreement report of one analyzer's labels, without a run: e.g. the adopted
    `qwen-3-4b-fp8` (read through the legacy mapping), or `llm` over all its runs. No
    run ledger, so no outcomes, tokens paid or packing: the labels against the free
    analyzers on the same tracks, and their distributions."""
    versions = await data.analyzer_versions(conn, analyzer)
    if not versions:
        names = await data.analyzer_counts(conn)
        there = ", ".join(names) if names else "none (this database has no results yet)"
        raise ReportError(f"no results of analyzer {analyzer!r}; analyzers with results: {there}")
    if version is not None and version not in versions:
        raise ReportError(
            f"analyzer {analyzer!r} has no results of version {version!r}; its versions:"
            f" {', '.join(versions)}"
        )
    rows = await data.analyzer_rows(conn, analyzer, version)
    source = {
        "analyzer_type": analyzer,
        "model_version": version,
        "versions": {version: versions[version]} if version is not None else versions,
        "legacy": analyzer in LEGACY_ANALYZERS,
        "kind": LEGACY_ANALYZERS.get(analyzer, analyzer),
    }
    report = agreement.build_for_analyzer(source, rows)
    # No run: no ledger of failures, no settings to ask again with, no cascade.
    report["label_quality"] = {
        "schema_validity": None,
        "reference": await _reference(conn, reference, rows),
        "consistency": None,
        "cascade": None,
    }
    return report, rows
