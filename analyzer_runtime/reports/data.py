"""Everything the reports read from Postgres. Aggregates in SQL where possible; lyrics
and embeddings are sampled in a deterministic order (md5 of the track id and a seed),
so the same corpus gives the same report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from analyzer_runtime import legacy_labels as legacy
from analyzer_runtime.analyzers.emotion import EMOTIONS

# The newest result of an analyzer per track (a track may have several versions).
_LATEST = """SELECT DISTINCT ON (track_id) * FROM analysis_results
              WHERE analyzer_type = '{kind}' ORDER BY track_id, created_at DESC, id DESC"""


def _latest_llm(param: str) -> str:
    """Per track, the LLM labels of the first of the analyzer types in `param` (a text[]
    parameter: this project's `llm` and adopted ones such as `qwen-3-4b-fp8`, in order of
    preference; newest first within one), read through legacy_labels' mapping."""
    return f"""SELECT DISTINCT ON (r.track_id) r.track_id, r.analyzer_type,
                   {legacy.sentiment_sql("r")} AS sentiment,
                   {legacy.themes_sql("r")} AS themes,
                   {legacy.quality_sql("r")} AS quality
              FROM analysis_results r WHERE r.analyzer_type = ANY({param}::text[])
             ORDER BY r.track_id, array_position({param}::text[], r.analyzer_type::text),
                      r.created_at DESC, r.id DESC"""


def _group_expr(by: str) -> str:
    if by == "year":
        return "extract(year FROM t.release_date)::int::text"
    if by == "artist":
        return "t.artist"
    raise ValueError(f"unknown grouping {by!r}: year or artist")


async def analyzer_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Tracks with a result, per analyzer_type (adopted legacy ones included)."""
    rows = await conn.fetch(
        "SELECT analyzer_type, count(DISTINCT track_id) AS n FROM analysis_results"
        " GROUP BY 1 ORDER BY 1"
    )
    return {r["analyzer_type"]: r["n"] for r in rows}


async def result_counts(
    conn: asyncpg.Connection, llm_types: Sequence[str], by_analyzer: dict[str, int]
) -> dict[str, int]:
    """Analyzed tracks per kind the trend report reads: algorithmic, emotion and llm
    (tracks with a result of any of `llm_types`)."""
    counts = {k: by_analyzer[k] for k in ("algorithmic", "emotion") if by_analyzer.get(k)}
    n_llm = await conn.fetchval(
        "SELECT count(DISTINCT track_id) FROM analysis_results"
        " WHERE analyzer_type = ANY($1::text[])",
        list(llm_types),
    )
    if n_llm:
        counts["llm"] = n_llm
    return counts


async def group_rows(
    conn: asyncpg.Connection, by: str, max_groups: int, llm_types: Sequence[str]
) -> list[dict[str, Any]]:
    """Per group (release year, or artist: the `max_groups` with most analyzed tracks):
    track counts, mean VADER compound, LLM sentiment label counts and mean quality,
    mean NRC emotion polarity and per-emotion scores. One aggregate query."""
    g = _group_expr(by)
    emo_cols = ", ".join(
        f"avg((emo.analysis_data->'scores'->>'{e}')::float) AS emo_{e}" for e in EMOTIONS
    )
    sql = f"""
        WITH alg AS ({_LATEST.format(kind="algorithmic")}),
             emo AS ({_LATEST.format(kind="emotion")}),
             llm AS ({_latest_llm("$1")})
        SELECT {g} AS grp,
               count(*) AS tracks,
               count(alg.track_id) AS n_algorithmic,
               avg((alg.analysis_data->'sentiment'->>'compound')::float) AS compound,
               count(*) FILTER (WHERE alg.sentiment = 'positive') AS alg_positive,
               count(*) FILTER (WHERE alg.sentiment = 'negative') AS alg_negative,
               count(*) FILTER (WHERE alg.sentiment = 'neutral') AS alg_neutral,
               count(emo.track_id) AS n_emotion,
               avg((emo.analysis_data->>'polarity')::float) AS polarity,
               {emo_cols},
               count(llm.track_id) AS n_llm,
               count(*) FILTER (WHERE llm.sentiment = 'positive') AS llm_positive,
               count(*) FILTER (WHERE llm.sentiment = 'negative') AS llm_negative,
               count(*) FILTER (WHERE llm.sentiment = 'neutral') AS llm_neutral,
               count(*) FILTER (WHERE llm.sentiment = 'mixed') AS llm_mixed,
               avg(llm.quality) AS llm_quality
          FROM tracks t
          LEFT JOIN alg ON alg.track_id = t.id
          LEFT JOIN emo ON emo.track_id = t.id
          LEFT JOIN llm ON llm.track_id = t.id
         WHERE {g} IS NOT NULL
           AND (alg.track_id IS NOT NULL OR emo.track_id IS NOT NULL OR llm.track_id IS NOT NULL)
         GROUP BY 1"""
    rows = [dict(r) for r in await conn.fetch(sql, list(llm_types))]
    if by == "artist":
        rows.sort(key=lambda r: (-r["tracks"], r["grp"]))
        rows = rows[:max_groups]
    rows.sort(key=lambda r: (int(r["grp"]) if by == "year" else 0, r["grp"]))
    return rows


async def group_themes(
    conn: asyncpg.Connection, by: str, groups: list[str], llm_types: Sequence[str]
) -> dict[str, dict[str, int]]:
    """LLM theme counts per group (one LLM result per track, as in group_rows)."""
    g = _group_expr(by)
    rows = await conn.fetch(
        f"""WITH llm AS ({_latest_llm("$2")})
            SELECT {g} AS grp, theme, count(*) AS n
              FROM llm JOIN tracks t ON t.id = llm.track_id,
                   jsonb_array_elements_text(llm.themes) AS theme
             WHERE {g} = ANY($1::text[])
             GROUP BY 1, 2""",
        groups,
        list(llm_types),
    )
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["grp"], {})[r["theme"]] = r["n"]
    return out


async def group_lyrics_sample(
    conn: asyncpg.Connection, by: str, groups: list[str], per_group: int, seed: int
) -> dict[str, list[str]]:
    """Up to `per_group` lyrics of analyzed tracks per group, in md5(id, seed) order."""
    g = _group_expr(by)
    rows = await conn.fetch(
        f"""SELECT grp, lyrics FROM (
                SELECT {g} AS grp, t.lyrics,
                       row_number() OVER (PARTITION BY {g} ORDER BY md5(t.id::text || $3)) AS rn
                  FROM tracks t
                 WHERE {g} = ANY($1::text[]) AND t.lyrics IS NOT NULL
                   AND EXISTS (SELECT 1 FROM analysis_results r WHERE r.track_id = t.id)
            ) s WHERE rn <= $2""",
        groups,
        per_group,
        str(seed),
    )
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["grp"], []).append(r["lyrics"])
    return out


@dataclass(slots=True)
class ClusterSample:
    source: str  # "embeddings:<model>" or "tfidf"
    track_ids: list[int]
    lyrics: list[str]
    vectors: Any  # numpy array (n, d) for embeddings, else None
    compound: list[float | None]
    llm_themes: list[list[str]]
    population: int  # how many tracks the sample was drawn from


async def cluster_sample(
    conn: asyncpg.Connection, size: int, seed: int, llm_types: Sequence[str]
) -> ClusterSample:
    """A deterministic sample of analyzed tracks: with their embeddings when an
    `embedding` run stored any (the model with most vectors), else lyrics only."""
    import numpy as np

    model = await conn.fetchval(
        "SELECT model FROM track_embeddings GROUP BY model ORDER BY count(*) DESC LIMIT 1"
    )
    common = f"""
        WITH alg AS ({_LATEST.format(kind="algorithmic")}),
             llm AS ({_latest_llm("$3")})
        SELECT t.id, t.lyrics, {{vec}} AS vec,
               (alg.analysis_data->'sentiment'->>'compound')::float AS compound,
               llm.themes AS themes
          FROM tracks t {{join}}
          LEFT JOIN alg ON alg.track_id = t.id
          LEFT JOIN llm ON llm.track_id = t.id
         WHERE t.lyrics IS NOT NULL AND {{where}}
         ORDER BY md5(t.id::text || $1) LIMIT $2"""
    if model is not None:
        join = "JOIN track_embeddings e ON e.track_id = t.id AND e.model = $4"
        sql = common.format(vec="e.embedding::text", join=join, where="true")
        rows = await conn.fetch(sql, str(seed), size, list(llm_types), model)
        population = await conn.fetchval(
            "SELECT count(*) FROM track_embeddings WHERE model = $1", model
        )
        vectors = np.array([json.loads(r["vec"]) for r in rows], dtype=np.float32)
        source = f"embeddings:{model}"
    else:
        where = "EXISTS (SELECT 1 FROM analysis_results r WHERE r.track_id = t.id)"
        sql = common.format(vec="NULL", join="", where=where)
        rows = await conn.fetch(sql, str(seed), size, list(llm_types))
        population = await conn.fetchval(
            f"SELECT count(*) FROM tracks t WHERE t.lyrics IS NOT NULL AND {where}"
        )
        vectors = None
        source = "tfidf"
    return ClusterSample(
        source=source,
        track_ids=[r["id"] for r in rows],
        lyrics=[r["lyrics"] for r in rows],
        vectors=vectors,
        compound=[r["compound"] for r in rows],
        llm_themes=[_themes(r["themes"]) for r in rows],
        population=int(population or 0),
    )


def _themes(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        v = json.loads(v)
    return [str(x) for x in v]


# ---- the llm report -----------------------------------------------------------------


async def find_run(conn: asyncpg.Connection, name: str) -> dict[str, Any] | None:
    """A run by uid or name (the newest of that name)."""
    row = await conn.fetchrow(
        """SELECT id, uid, name, kind, analyzer_type, model_version, spec, state, total,
                  created_at, finished_at, compacted_at
             FROM runs WHERE uid = $1 OR name = $1
            ORDER BY (uid = $1) DESC, created_at DESC, id DESC LIMIT 1""",
        name,
    )
    if row is None:
        return None
    run = dict(row)
    if isinstance(run["spec"], str):
        run["spec"] = json.loads(run["spec"])
    return run


def tracks_per_request(spec: dict[str, Any]) -> int:
    llm = spec.get("llm") or {}
    return int(llm.get("tracksPerRequest") or llm.get("tracks_per_request") or 1)


async def run_ledger(conn: asyncpg.Connection, run_id: int) -> dict[str, Any]:
    """Item states, the commonest failure reasons, and the shards' token/fallback sums."""
    states = {
        r["state"]: r["n"]
        for r in await conn.fetch(
            "SELECT state, count(*) AS n FROM run_items WHERE run_id = $1 GROUP BY 1", run_id
        )
    }
    reasons = [
        {"reason": r["reason"], "count": r["n"]}
        for r in await conn.fetch(
            """SELECT coalesce(left(last_error, 120), '(no reason)') AS reason, count(*) AS n
                 FROM run_items WHERE run_id = $1 AND state = 'failed'
                GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10""",
            run_id,
        )
    ]
    shards = await conn.fetchrow(
        """SELECT coalesce(sum(tokens_prompt), 0)::bigint AS tokens_prompt,
                  coalesce(sum(tokens_completion), 0)::bigint AS tokens_completion,
                  coalesce(sum(fallback_used), 0)::bigint AS fallback_used
             FROM run_shards WHERE run_id = $1""",
        run_id,
    )
    return {"items": states, "failure_reasons": reasons, "shards": dict(shards)}


async def stood_in_count(
    conn: asyncpg.Connection, run_id: int, version: str, marker: str
) -> dict[str, int]:
    """Results another analyzer stored for the run's tracks in the LLM's place, by
    analyzer: `marker` "fallback_for" (the fallback analyzer) or "cascade_for" (the
    tracks a cascade kept), naming the LLM version `version`."""
    if marker not in ("fallback_for", "cascade_for"):
        raise ValueError(f"unknown marker {marker!r}")
    rows = await conn.fetch(
        f"""SELECT r.analyzer_type, count(*) AS n
              FROM run_items i JOIN analysis_results r ON r.track_id = i.item_id
             WHERE i.run_id = $1 AND r.analysis_data->'{marker}'->>'model_version' = $2
             GROUP BY 1""",
        run_id,
        version,
    )
    return {r["analyzer_type"]: r["n"] for r in rows}


def _llm_columns(t: str = "r", prefix: str = "") -> str:
    """The answer's fields of an llm result row `t`, named with `prefix`."""
    return f"""{t}.sentiment AS {prefix}sentiment, {t}.confidence::float AS {prefix}confidence,
    {t}.themes AS {prefix}themes, {t}.complexity_score::float AS {prefix}complexity,
    ({t}.analysis_data->>'quality')::float AS {prefix}quality,
    ({t}.analysis_data->'tokens'->>'prompt')::int AS {prefix}tokens_prompt,
    ({t}.analysis_data->'tokens'->>'completion')::int AS {prefix}tokens_completion,
    ({t}.analysis_data->>'tracks_per_request')::int AS {prefix}pack,
    coalesce(({t}.analysis_data->>'repaired')::bool, false) AS {prefix}repaired,
    coalesce(({t}.analysis_data->>'truncated')::bool, false) AS {prefix}truncated"""


def _label_columns(t: str = "r") -> str:
    """_llm_columns for any analyzer's row, this project's llm or an adopted legacy LLM:
    the labels through legacy_labels' mapping, the transport fields only where they are
    JSON numbers/booleans (legacy analysis_data is free-form: nothing here can fail)."""
    ad = f"{t}.analysis_data"
    return f"""{legacy.sentiment_sql(t)} AS sentiment, {t}.confidence::float AS confidence,
    {legacy.themes_sql(t)} AS themes, {legacy.complexity_sql(t)} AS complexity,
    {legacy.quality_sql(t)} AS quality,
    ({legacy.json_number(t, "tokens", "prompt", lo=0, hi=2**31 - 1)})::int AS tokens_prompt,
    ({legacy.json_number(t, "tokens", "completion", lo=0, hi=2**31 - 1)})::int
        AS tokens_completion,
    ({legacy.json_number(t, "tracks_per_request", lo=1, hi=1000)})::int AS pack,
    coalesce({ad}->'repaired' = 'true'::jsonb, false) AS repaired,
    coalesce({ad}->'truncated' = 'true'::jsonb, false) AS truncated"""


def _free_analyzers(r: str = "r") -> tuple[str, str]:
    """(columns, LATERAL joins): the newest algorithmic and emotion results of the track
    of row `r`, as the llm report compares them."""
    emo_cols = ", ".join(
        f"(emo.analysis_data->'scores'->>'{e}')::float AS emo_{e}" for e in EMOTIONS
    )
    cols = f"""(alg.analysis_data->'sentiment'->>'compound')::float AS compound,
                   alg.sentiment AS vader_label,
                   alg.complexity_score::float AS alg_complexity,
                   emo.sentiment AS emo_label, emo.analysis_data->>'dominant' AS emo_dominant,
                   {emo_cols}"""
    joins = f"""LEFT JOIN LATERAL (
                   SELECT * FROM analysis_results a
                    WHERE a.track_id = {r}.track_id AND a.analyzer_type = 'algorithmic'
                      AND NOT a.analysis_data ? 'fallback_for'
                    ORDER BY a.created_at DESC, a.id DESC LIMIT 1) alg ON true
              LEFT JOIN LATERAL (
                   SELECT * FROM analysis_results a
                    WHERE a.track_id = {r}.track_id AND a.analyzer_type = 'emotion'
                      AND NOT a.analysis_data ? 'fallback_for'
                    ORDER BY a.created_at DESC, a.id DESC LIMIT 1) emo ON true"""
    return cols, joins


def _with_emotions(rows: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        d = dict(r)
        d["themes"] = _themes(d["themes"])
        d["emotions"] = {e: d.pop(f"emo_{e}") for e in EMOTIONS}
        out.append(d)
    return out


async def llm_rows(conn: asyncpg.Connection, run_id: int, version: str) -> list[dict[str, Any]]:
    """The run's llm results with the same tracks' newest algorithmic and emotion ones."""
    cols, joins = _free_analyzers()
    rows = await conn.fetch(
        f"""SELECT r.track_id, {_llm_columns()},
                   {cols}
              FROM run_items i
              JOIN analysis_results r ON r.track_id = i.item_id
                   AND r.analyzer_type = 'llm' AND r.model_version = $2
              {joins}
             WHERE i.run_id = $1
             ORDER BY r.track_id""",
        run_id,
        version,
    )
    return _with_emotions(rows)


async def analyzer_versions(conn: asyncpg.Connection, analyzer: str) -> dict[str, int]:
    """Results of `analyzer` per model_version (empty: the analyzer has none)."""
    rows = await conn.fetch(
        """SELECT model_version, count(*) AS n FROM analysis_results
            WHERE analyzer_type = $1 GROUP BY 1 ORDER BY 1""",
        analyzer,
    )
    return {r["model_version"]: r["n"] for r in rows}


async def analyzer_rows(
    conn: asyncpg.Connection, analyzer: str, version: str | None
) -> list[dict[str, Any]]:
    """The labels of one analyzer (every version - the newest result per track - or
    one), read through legacy_labels' mapping, with the same tracks' newest algorithmic
    and emotion results."""
    cols, joins = _free_analyzers()
    rows = await conn.fetch(
        f"""SELECT r.track_id, r.model_version, {_label_columns()},
                   {cols}
              FROM (SELECT DISTINCT ON (track_id) * FROM analysis_results
                     WHERE analyzer_type = $1 AND ($2::text IS NULL OR model_version = $2)
                     ORDER BY track_id, created_at DESC, id DESC) r
              {joins}
             ORDER BY r.track_id""",
        analyzer,
        version,
    )
    return _with_emotions(rows)


async def other_llm_versions(conn: asyncpg.Connection, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Other llm model versions (with their runs' tracksPerRequest) that analyzed some
    of this run's tracks."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (o.model_version) o.model_version, o.name, o.uid, o.spec
             FROM runs o
            WHERE o.analyzer_type = 'llm' AND o.model_version IS DISTINCT FROM $1
              AND EXISTS (SELECT 1 FROM run_items i JOIN analysis_results r
                            ON r.track_id = i.item_id AND r.analyzer_type = 'llm'
                           AND r.model_version = o.model_version
                         WHERE i.run_id = $2)
            ORDER BY o.model_version, o.created_at DESC""",
        run["model_version"],
        run["id"],
    )
    out = []
    for r in rows:
        spec = json.loads(r["spec"]) if isinstance(r["spec"], str) else r["spec"]
        out.append(
            {
                "model_version": r["model_version"],
                "run": r["name"],
                "uid": r["uid"],
                "tracks_per_request": tracks_per_request(spec),
            }
        )
    return out


async def paired_llm_rows(
    conn: asyncpg.Connection, run_id: int, version: str, other_version: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(this run's answer, the other version's answer) for each track both analyzed."""
    rows = await conn.fetch(
        f"""SELECT r.track_id, {_llm_columns()}, {_llm_columns("b", "b_")}
              FROM run_items i
              JOIN analysis_results r ON r.track_id = i.item_id
                   AND r.analyzer_type = 'llm' AND r.model_version = $2
              JOIN analysis_results b ON b.track_id = i.item_id
                   AND b.analyzer_type = 'llm' AND b.model_version = $3
             WHERE i.run_id = $1 ORDER BY r.track_id""",
        run_id,
        version,
        other_version,
    )
    pairs = []
    for r in rows:
        d = dict(r)
        b = {k[2:]: d.pop(k) for k in list(d) if k.startswith("b_")}
        d["themes"] = _themes(d["themes"])
        b["themes"] = _themes(b["themes"])
        pairs.append((d, b))
    return pairs


# ---- label quality (issue 25) -------------------------------------------------------


async def failure_reasons_all(conn: asyncpg.Connection, run_id: int) -> dict[str, int]:
    """Every failed item's reason (run_items.last_error) with its count."""
    rows = await conn.fetch(
        """SELECT coalesce(last_error, '') AS reason, count(*) AS n FROM run_items
            WHERE run_id = $1 AND state = 'failed' GROUP BY 1""",
        run_id,
    )
    return {r["reason"]: r["n"] for r in rows}


async def consistency_sample(
    conn: asyncpg.Connection, run_id: int, version: str, size: int, seed: int
) -> list[dict[str, Any]]:
    """Up to `size` of the run's tracks with an llm answer of its version, in
    md5(id || seed) order (the same sample every time), with their lyrics."""
    rows = await conn.fetch(
        """SELECT t.id, t.title, t.artist, t.lyrics, r.sentiment, r.themes
             FROM run_items i
             JOIN analysis_results r ON r.track_id = i.item_id
                  AND r.analyzer_type = 'llm' AND r.model_version = $2
             JOIN tracks t ON t.id = i.item_id
            WHERE i.run_id = $1
            ORDER BY md5(t.id::text || $4) LIMIT $3""",
        run_id,
        version,
        size,
        str(seed),
    )
    return [{**dict(r), "themes": _themes(r["themes"])} for r in rows]


async def match_reference(
    conn: asyncpg.Connection, by_id: dict[int, int], by_name: dict[int, tuple[str, str]]
) -> dict[int, int]:
    """Reference line -> track id: `by_id` (line -> track_id) where the track exists,
    `by_name` (line -> (artist, title)) by case-insensitive, trimmed equality (the
    lowest id when several tracks share both)."""
    out: dict[int, int] = {}
    if by_id:
        found = {
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM tracks WHERE id = ANY($1::bigint[])", list(set(by_id.values()))
            )
        }
        out |= {line: tid for line, tid in by_id.items() if tid in found}
    if by_name:
        lines = list(by_name)
        rows = await conn.fetch(
            """WITH ref AS (SELECT * FROM unnest($1::int[], $2::text[], $3::text[])
                              AS u(line, artist, title))
               SELECT DISTINCT ON (ref.line) ref.line, t.id
                 FROM ref JOIN tracks t
                   ON lower(btrim(t.artist)) = lower(btrim(ref.artist))
                  AND lower(btrim(t.title)) = lower(btrim(ref.title))
                ORDER BY ref.line, t.id""",
            lines,
            [by_name[li][0] for li in lines],
            [by_name[li][1] for li in lines],
        )
        out |= {r["line"]: r["id"] for r in rows}
    return out


async def cascade_pairs(
    conn: asyncpg.Connection, run_id: int, version: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(the result a cascade kept for one of the run's tracks, that track's llm
    result): the llm result of the run's own version where there is one (e.g. from an
    LLM-only run over the same tracks), else its newest of any version."""
    rows = await conn.fetch(
        """SELECT c.track_id, c.analyzer_type, c.sentiment,
                  (c.analysis_data->>'quality')::float AS quality,
                  c.complexity_score::float AS complexity,
                  l.model_version AS llm_version, l.sentiment AS llm_sentiment,
                  (l.analysis_data->>'quality')::float AS llm_quality,
                  l.complexity_score::float AS llm_complexity
             FROM run_items i
             JOIN analysis_results c ON c.track_id = i.item_id
                  AND c.analysis_data->'cascade_for'->>'model_version' = $2
             JOIN LATERAL (
                  SELECT * FROM analysis_results l
                   WHERE l.track_id = i.item_id AND l.analyzer_type = 'llm'
                   ORDER BY (l.model_version = $2) DESC, l.created_at DESC, l.id DESC
                   LIMIT 1) l ON true
            WHERE i.run_id = $1
            ORDER BY c.track_id""",
        run_id,
        version,
    )
    pairs = []
    for r in rows:
        d = dict(r)
        b = {k[4:]: d.pop(k) for k in list(d) if k.startswith("llm_")}
        pairs.append((d, b))
    return pairs
