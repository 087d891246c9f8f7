"""Planning: which tracks a run analyzes, and which shard each belongs to."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from analyzer_runtime.contract import llm_presets
from analyzer_runtime.contract.models import LLMOptions
from analyzer_runtime.contract.types import ANALYZER_VERSIONS, AnalyzerName
from analyzer_runtime.ledger import estimates, llm_estimate, models
from analyzer_runtime.ledger import shards as shard_ledger

# Fields a run resumed locally may take from a new YAML; the operator's own list of
# what may change after planning (models.MUTABLE_AFTER_PLANNING) is about a live Job.
RESUMABLE_CHANGES = frozenset({"parallelism"})


class OverlapError(Exception):
    """An active run of the same analyzer and version has pending work on some of the
    tracks this run would select: both would analyze them."""

    def __init__(self, other: shard_ledger.Run) -> None:
        where = f"{other.namespace}/{other.name}" if other.namespace else other.name
        super().__init__(
            f"overlaps run {where} (uid {other.uid}, {other.state}), which has pending work"
            f" on some of the same tracks with {other.analyzer_type} {other.model_version}."
            " Wait for it to finish (with onlyMissing the new run then selects only what is"
            " left), resume it if it was interrupted, or allow the overlap"
        )
        self.other = other


@dataclass(frozen=True, slots=True)
class Selection:
    only_missing: bool = True
    artists: list[str] = field(default_factory=list)
    id_from: int | None = None
    id_to: int | None = None
    limit: int | None = None
    min_words: int | None = None
    scrape_run: str | None = None  # a ScrapeJob's uid: only the tracks it inserted/updated
    # analyzer types (any version): tracks with a result of one of them are not selected
    skip_analyzed_by: list[str] = field(default_factory=list)


def selection_query(sel: Selection) -> tuple[str, list[Any]]:
    """The SELECT for a selection; $1/$2 are always analyzer_type and model_version."""
    where: list[str] = []
    args: list[Any] = []

    def arg(v: Any) -> str:
        args.append(v)
        return f"${len(args) + 2}"

    if sel.artists:
        where.append(f"t.artist = ANY({arg(sel.artists)}::text[])")
    if sel.id_from is not None:
        where.append(f"t.id >= {arg(sel.id_from)}")
    if sel.id_to is not None:
        where.append(f"t.id <= {arg(sel.id_to)}")
    if sel.min_words:
        where.append(f"coalesce(t.word_count, 0) >= {arg(sel.min_words)}")
    if sel.scrape_run is not None:
        # The scrape ledger (migration 0004) of that job; an unknown uid selects nothing.
        where.append(
            "t.id IN (SELECT s.track_id FROM scrape_songs s JOIN runs r ON r.id = s.run_id"
            f" WHERE r.uid = {arg(sel.scrape_run)} AND s.outcome IN ('inserted', 'updated'))"
        )
    if sel.skip_analyzed_by:
        # Tracks another analyzer already labelled, e.g. the original platform's Qwen
        # (`qwen-3-4b-fp8`): an anti-join on the results of those types, any version,
        # read from the (analyzer_type, model_version, track_id) index (README).
        where.append(
            "NOT EXISTS (SELECT 1 FROM analysis_results s WHERE s.track_id = t.id"
            f" AND s.analyzer_type = ANY({arg(list(sel.skip_analyzed_by))}::text[]))"
        )
    if sel.only_missing:
        # Anti-join on the unique (track_id, analyzer_type, model_version) index.
        where.append(
            "NOT EXISTS (SELECT 1 FROM analysis_results r WHERE r.track_id = t.id"
            " AND r.analyzer_type = $1 AND r.model_version = $2)"
        )
    else:
        where.append("$1::text IS NOT NULL AND $2::text IS NOT NULL")
    sql = "SELECT t.id FROM tracks t WHERE " + " AND ".join(where) + " ORDER BY t.id"
    if sel.limit is not None:
        sql += f" LIMIT {arg(sel.limit)}"
    return sql, args


async def select_track_ids(
    conn: asyncpg.Connection, sel: Selection, analyzer_type: str, model_version: str
) -> list[int]:
    sql, args = selection_query(sel)
    return [r[0] for r in await conn.fetch(sql, analyzer_type, model_version, *args)]


async def plan_analysis(
    conn: asyncpg.Connection,
    *,
    uid: str,
    name: str,
    namespace: str | None,
    spec: dict[str, Any],
    selection: Selection,
    shards: int,
    analyzer_type: str,
    model_version: str,
    allow_overlap: bool = False,
) -> shard_ledger.PlanResult:
    """Plan once per uid: a second call returns the first plan and writes nothing.

    Selection, overlap check and the plan are one transaction under a lock per
    analyzer and version, so two runs planned at once cannot both miss each other."""
    existing = await shard_ledger.find_run(conn, uid)
    if existing is not None:
        return shard_ledger.PlanResult(existing, created=False)
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"plan:{analyzer_type}:{model_version}",
        )
        existing = await shard_ledger.find_run(conn, uid)
        if existing is not None:
            return shard_ledger.PlanResult(existing, created=False)
        # Set-based: the selection runs inside the INSERT that writes the items and
        # their shards; the ids never come to Python (a 1 M-track plan in seconds,
        # bench/RESULTS.md issue 16).
        sql, args = selection_query(selection)
        plan = await shard_ledger.record_plan(
            conn,
            uid=uid,
            name=name,
            namespace=namespace,
            kind="AnalysisRun",
            spec=spec,
            shards=shards,
            analyzer_type=analyzer_type,
            model_version=model_version,
            item_ids=shard_ledger.ItemQuery(sql, [analyzer_type, model_version, *args]),
        )
        if not allow_overlap and plan.created and plan.run.total:
            # Checked against the items just written; raising rolls the plan back.
            other = await shard_ledger.overlapping_run(
                conn, analyzer_type, model_version, plan.run.id
            )
            if other is not None:
                raise OverlapError(other)
        return plan


def differences_from_plan(run: shard_ledger.Run, manifest: Any) -> list[str]:
    """Fields of `manifest` that differ from the run as planned, other than those a
    resumed run may take (`RESUMABLE_CHANGES`), e.g. `spec.shards`, `metadata.name`."""
    spec = manifest.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    planned = run.spec
    with contextlib.suppress(ValueError):
        # Through today's models, so that a field added since the run was planned
        # compares as its default rather than as a difference.
        planned = (
            type(manifest.spec)
            .model_validate(planned)
            .model_dump(by_alias=True, exclude_none=True, mode="json")
        )
    fields = [
        f"spec.{k} (planned {_show(planned.get(k))}, YAML {_show(spec.get(k))})"
        for k in sorted(planned.keys() | spec.keys())
        if k not in RESUMABLE_CHANGES and planned.get(k) != spec.get(k)
    ]
    if manifest.metadata.name != run.name:
        fields.insert(0, f"metadata.name (planned {run.name!r}, YAML {manifest.metadata.name!r})")
    return fields


def _show(value: Any) -> str:
    text = "unset" if value is None else json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def selection_of(spec: dict[str, Any]) -> Selection:
    sel = spec.get("selection") or {}
    rng = sel.get("idRange") or {}
    return Selection(
        only_missing=sel.get("onlyMissing", True),
        artists=list(sel.get("artists") or []),
        id_from=rng.get("from"),
        id_to=rng.get("to"),
        limit=sel.get("limit"),
        min_words=sel.get("minWords"),
        scrape_run=sel.get("scrapeRun"),
        skip_analyzed_by=list(sel.get("skipAnalyzedBy") or []),
    )


def planned_version(spec: dict[str, Any]) -> tuple[str, str]:
    """(analyzer_type, model_version) the results of a spec's run are stored under:
    spec.analyzerVersion, else the newest version the analyzer implements (the
    contract's ANALYZER_VERSIONS; an llm's version names its provider, model and
    prompt). ValueError for a version the analyzer does not implement. No analyzer is
    created: the operator plans without the runtime (its image has none)."""
    name = AnalyzerName(spec["analyzer"])
    asked = spec.get("analyzerVersion")
    if name == AnalyzerName.llm:
        options = LLMOptions.model_validate(analyzer_options(spec))
        return name.value, str(asked) if asked else llm_presets.resolve(options).model_version
    versions = ANALYZER_VERSIONS[name] or ()
    if asked is None:
        return name.value, versions[-1]
    if asked not in versions:
        raise ValueError(
            f"{name.value} implements version(s) {', '.join(versions)}; the run asks for {asked!r}"
        )
    return name.value, str(asked)


async def plan_manifest(
    conn: asyncpg.Connection, manifest: Any, uid: str, *, allow_overlap: bool = False
) -> shard_ledger.PlanResult:
    """Plan the run of an AnalysisRun manifest once per uid, pin the quality model it
    uses (ModelNotFound rolls the plan back: nothing is left pending), and store its
    estimate before any shard starts (whenever missing: a planner that died in between
    leaves one on the next attempt)."""
    spec = manifest.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    analyzer_type, version = planned_version(spec)
    async with conn.transaction():
        plan = await plan_analysis(
            conn,
            uid=uid,
            name=manifest.metadata.name,
            namespace=manifest.metadata.namespace,
            spec=spec,
            selection=selection_of(spec),
            shards=spec["shards"],
            analyzer_type=analyzer_type,
            model_version=version,
            allow_overlap=allow_overlap or bool(spec.get("allowOverlap")),
        )
        model = await _pin_model(conn, plan.run.id, spec)
    if await estimates.read(conn, plan.run.id) is None:
        estimate = await _estimate(conn, plan.run, spec, model)
        if estimate is not None:
            await estimates.store(conn, plan.run.id, estimate)
    return plan


async def _pin_model(
    conn: asyncpg.Connection, run_id: int, spec: dict[str, Any]
) -> models.StoredModel | None:
    """The quality model a quality run (spec.modelVersion, else the latest) or an llm
    run's quality cascade (the latest, with its sentiment head) uses, pinned to the run."""
    if spec["analyzer"] == AnalyzerName.quality:
        return await models.pin(conn, run_id, spec.get("modelVersion"))
    cascade = (spec.get("llm") or {}).get("cascade") or {}
    if spec["analyzer"] == AnalyzerName.llm and cascade.get("analyzer") == "quality":
        model = await models.pin(conn, run_id, None)
        models.require_head(model)
        return model
    return None


async def _estimate(
    conn: asyncpg.Connection,
    run: shard_ledger.Run,
    spec: dict[str, Any],
    model: models.StoredModel | None,
) -> dict[str, Any] | None:
    """status.estimate: an llm run's requests, tokens, cost and duration (and what its
    cascade keeps); the other analyzers cost nothing worth estimating."""
    if spec["analyzer"] != AnalyzerName.llm:
        return None
    options = LLMOptions.model_validate(analyzer_options(spec))
    out = await llm_estimate.estimate_run(conn, run, options, llm_presets.resolve(options))
    if options.cascade is not None:
        out["cascade"] = llm_estimate.cascade_estimate(options.cascade, model, out.get("cost"))
    return out


def analyzer_options(spec: dict[str, Any]) -> dict[str, Any]:
    """Options the spec gives the analyzer (LLM settings and the like)."""
    opts = spec.get("llm") or {}
    return dict(opts) if spec.get("analyzer") == "llm" else {}
