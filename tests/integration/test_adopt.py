"""`rap-analyzer db adopt` on a database in the original platform's schema, with every
quirk the issue reports (rap_devtools.legacy_platform), against real Postgres."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from rap_devtools import legacy_platform
from rap_operator import database

from analyzer_runtime.db import adopt as adoption
from analyzer_runtime.db.schema_shape import TableShape, describe
from analyzer_runtime.ledger.migrate import applied
from tests.integration.clirun import cli

N_TRACKS = 2_400


async def _build(url: str, tracks: int = N_TRACKS) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return await legacy_platform.build(conn, tracks)
    finally:
        await conn.close()


def legacy_db(make_empty_db: Callable[[], str], tracks: int = N_TRACKS) -> str:
    url = make_empty_db()
    asyncio.run(_build(url, tracks))
    return url


SNAPSHOT_TABLES = {
    "tracks": "t",
    "analysis_results": "t",
    adoption.DUPLICATES: '(t.id, t.track_id, t.reason, t.kept_id, t."row")',
    adoption.GENIUS_IDS: "(t.track_id, t.genius_id, t.kept_by)",
}


async def snapshot(url: str) -> dict[str, Any]:
    """Every row of the corpus tables (hashed) and their shapes: equal snapshots, equal
    databases."""
    conn = await asyncpg.connect(url)
    try:
        snap: dict[str, Any] = {}
        for table, row in SNAPSHOT_TABLES.items():
            if await conn.fetchval("SELECT to_regclass($1)", table) is None:
                continue
            key = "track_id" if table == adoption.GENIUS_IDS else "id"
            snap[table] = await conn.fetchrow(
                f"SELECT count(*), md5(string_agg({row}::text, '|' ORDER BY t.{key})) FROM {table} t"
            )
            snap[f"{table} shape"] = await describe(conn, "public", table)
        snap["migrations"] = sorted(await applied(conn))
        return snap
    finally:
        await conn.close()


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def test_migrate_on_the_platform_database_says_adopt(make_empty_db: Callable[[], str]) -> None:
    # Reported: `db migrate` on the platform's database ended in DuplicateTableError.
    url = legacy_db(make_empty_db, 50)
    before = asyncio.run(snapshot(url))
    r = cli("db", "migrate", db_url=url)
    assert r.returncode == 2, r.stderr
    assert "rap-analyzer db adopt" in r.stderr and "DuplicateTable" not in r.stderr
    assert asyncio.run(snapshot(url)) == before  # not even schema_migrations
    # Every command that migrates first says the same (here: seed).
    r = cli("seed", "10", db_url=url)
    assert r.returncode == 2 and "db adopt" in r.stderr


def test_the_operator_does_not_adopt_behind_the_admin(
    make_empty_db: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = legacy_db(make_empty_db, 20)
    before = asyncio.run(snapshot(url))

    async def check() -> None:
        try:
            with pytest.raises(database.NotMigrated, match="rap-analyzer db adopt"):
                await database.pool(url)
        finally:
            await database.close_all()

    # Its own database (which it migrates on first use) or a tenant's: neither.
    monkeypatch.setenv("DATABASE_URL", url)
    asyncio.run(check())
    monkeypatch.delenv("DATABASE_URL")
    asyncio.run(check())
    assert asyncio.run(snapshot(url)) == before


def test_dry_run_prints_the_plan_and_changes_nothing(make_empty_db: Callable[[], str]) -> None:
    url = legacy_db(make_empty_db)
    before = asyncio.run(snapshot(url))
    r = cli("db", "adopt", "--dry-run", "--json", db_url=url)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert asyncio.run(snapshot(url)) == before
    assert report["dry_run"] and report["state"] == "legacy"
    changes = {c["kind"]: c["rows"] for c in report["changes"]}
    # The counts are the real rows', computed here independently.
    [expected] = asyncio.run(
        fetch(
            url,
            """SELECT count(*) - count(DISTINCT track_id) AS qwen_dups
               FROM analysis_results WHERE analyzer_type = 'qwen-3-4b-fp8'""",
        )
    )
    assert changes["duplicate analyses: qwen-3-4b-fp8"] == expected["qwen_dups"] > 0
    assert changes["duplicate analyses: simplified_features"] == N_TRACKS  # two per track
    [row] = asyncio.run(
        fetch(
            url,
            # Values are fixed on the rows that stay: the newest per key, with a track.
            """WITH stays AS (
                   SELECT * FROM (
                       SELECT a.*, row_number() OVER (
                           PARTITION BY track_id, analyzer_type, coalesce(model_version, 'legacy')
                           ORDER BY created_at DESC NULLS LAST, id DESC) AS rn
                       FROM analysis_results a WHERE track_id IS NOT NULL) r
                   WHERE rn = 1)
               SELECT count(*) FILTER (WHERE confidence < 0 OR confidence > 1) AS conf,
                      count(*) FILTER (WHERE model_version IS NULL) AS nullv,
                      count(*) FILTER (WHERE themes = 'money, fame, loyalty') AS text_themes
               FROM stays""",
        )
    )
    assert changes["confidence: out of range 0-1"] == row["conf"] > 0
    assert changes["themes: plain text"] == row["text_themes"] > 0
    assert changes["model_version: NULL"] == row["nullv"] > 0
    assert changes["orphan analyses: mock_analyzer_v1"] == 1
    assert changes["analysis_data: not a JSON object"] > 0
    assert changes["genius_id shared with an earlier track"] == N_TRACKS // 997
    assert any("themes: text -> jsonb" in s for s in report["schema"])
    assert "0001_corpus (adopted)" in report["migrations"]
    assert report["after"]["analysis_results"] < report["before"]["analysis_results"]
    # The same plan for a person.
    r = cli("db", "adopt", "--dry-run", db_url=url)
    assert r.returncode == 0 and "Plan (dry run, nothing changed)" in r.stdout
    assert "qwen-3-4b-fp8" in r.stdout
    assert asyncio.run(snapshot(url)) == before


def test_adopt_keeps_every_row_and_reaches_the_current_schema(
    make_empty_db: Callable[[], str], db_url: str
) -> None:
    url = legacy_db(make_empty_db)
    original = {
        r["analyzer_type"]: r
        for r in asyncio.run(
            fetch(
                url,
                """SELECT analyzer_type, count(*) AS n,
                          count(DISTINCT (track_id, coalesce(model_version, 'legacy')))
                              FILTER (WHERE track_id IS NOT NULL) AS keys
                   FROM analysis_results GROUP BY 1""",
            )
        )
    }
    tracks_before = asyncio.run(fetch(url, "SELECT id, genius_id FROM tracks ORDER BY id"))
    text_themes = asyncio.run(
        fetch(url, "SELECT id FROM analysis_results WHERE themes = 'money, fame, loyalty'")
    )
    r = cli("db", "adopt", "--json", "--batch-size", "500", db_url=url)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["state"] == "adopted" and not report["dry_run"]

    # Every track is still there, with its id; shared Genius ids are kept aside.
    tracks_after = asyncio.run(fetch(url, "SELECT id, genius_id FROM tracks ORDER BY id"))
    assert [t["id"] for t in tracks_after] == [t["id"] for t in tracks_before]
    moved_gids = {
        r["track_id"]: r["genius_id"]
        for r in asyncio.run(fetch(url, f"SELECT * FROM {adoption.GENIUS_IDS}"))
    }
    for b, a in zip(tracks_before, tracks_after, strict=True):
        assert a["genius_id"] == b["genius_id"] or (
            a["genius_id"] is None and moved_gids[a["id"]] == b["genius_id"]
        )
    assert len(moved_gids) == N_TRACKS // 997

    # Analyses kept = distinct (track, analyzer, version); kept + moved = original.
    kept = {
        r["analyzer_type"]: r["n"]
        for r in asyncio.run(
            fetch(url, "SELECT analyzer_type, count(*) AS n FROM analysis_results GROUP BY 1")
        )
    }
    moved = {
        r["analyzer_type"]: r["n"]
        for r in asyncio.run(
            fetch(url, f"SELECT analyzer_type, count(*) AS n FROM {adoption.DUPLICATES} GROUP BY 1")
        )
    }
    assert set(kept) == set(original)
    for name, o in original.items():
        assert kept[name] == o["keys"], name
        assert kept[name] + moved.get(name, 0) == o["n"], name
    assert original["qwen-3-4b-fp8"]["n"] > kept["qwen-3-4b-fp8"] == N_TRACKS

    # The row that stayed is the newest of its key (then the highest id).
    [stale] = asyncio.run(
        fetch(
            url,
            f"""SELECT count(*) FROM {adoption.DUPLICATES} d JOIN analysis_results k ON k.id = d.kept_id
                WHERE d.reason = 'duplicate'
                  AND ((d."row"->>'created_at')::timestamp AT TIME ZONE current_setting('TimeZone')
                       > k.created_at
                       OR ((d."row"->>'created_at')::timestamp AT TIME ZONE current_setting('TimeZone')
                           = k.created_at AND d.id > k.id))""",
        )
    )
    assert stale[0] == 0

    # Values the new rules refuse: NULL or normalised, the original kept beside.
    [v] = asyncio.run(
        fetch(
            url,
            """SELECT count(*) FILTER (WHERE jsonb_typeof(themes) <> 'array') AS not_arrays,
                      count(*) FILTER (WHERE (analysis_data->'legacy'->>'confidence')::numeric > 1
                                        AND confidence IS NULL) AS big_conf_kept,
                      count(*) FILTER (WHERE (analysis_data->'legacy'->>'confidence')::numeric = 85)
                          AS percent_kept,
                      count(*) FILTER (WHERE model_version = 'legacy') AS legacy_versions
               FROM analysis_results""",
        )
    )
    assert v["not_arrays"] == 0 and v["big_conf_kept"] > 0 and v["percent_kept"] > 0
    assert v["legacy_versions"] > 0
    for row in asyncio.run(
        fetch(
            url,
            "SELECT themes, analysis_data FROM analysis_results WHERE id = ANY($1::int[])",
            [t["id"] for t in text_themes],
        )
    ):
        assert json.loads(row["themes"]) == ["money, fame, loyalty"]
        assert json.loads(row["analysis_data"])["legacy"]["themes"] == "money, fame, loyalty"

    # The schema is the project's: the same shapes as a freshly migrated database.
    adopted, fresh = asyncio.run(snapshot(url)), asyncio.run(snapshot(db_url))
    assert adopted["migrations"] == fresh["migrations"]
    for table in ("tracks", "analysis_results"):
        a: TableShape = adopted[f"{table} shape"]
        f: TableShape = fresh[f"{table} shape"]
        assert {k: c for k, c in a.columns.items() if k in f.columns} == f.columns
        assert {n: c.definition for n, c in a.constraints.items()} == {
            n: c.definition for n, c in f.constraints.items()
        }
        assert {n: a.indexes[n] for n in f.indexes} == f.indexes
    # The platform's own column is kept with its values.
    assert "audio_features" in adopted["tracks shape"].columns
    [af] = asyncio.run(fetch(url, "SELECT count(audio_features) FROM tracks"))
    assert af[0] == N_TRACKS // 5

    # Afterwards: migrate is a no-op, and so is a second adopt.
    r = cli("db", "migrate", db_url=url)
    assert r.returncode == 0 and "schema is up to date" in r.stdout
    r = cli("db", "adopt", "--json", db_url=url)
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["state"] == "current" and again["migrations"] == [] and again["changes"] == []
    assert asyncio.run(snapshot(url)) == adopted
    # The report was recorded.
    [rec] = asyncio.run(fetch(url, "SELECT count(*), max(report->>'state') FROM schema_adoptions"))
    assert tuple(rec) == (1, "adopted")


async def _interrupted_adoption(url: str, stop_after: str) -> list[str]:
    """An adoption whose connection drops after the step named `stop_after*`."""
    conn = await asyncpg.connect(url)
    step = adoption.Adoption(conn, batch_size=300, report=adoption.Report(state="legacy"))
    done = []
    async for name in step.steps():
        done.append(name)
        if name.startswith(stop_after):
            break
    conn.terminate()
    return done


@pytest.mark.parametrize(
    "stop_after", ["duplicates of tracks 301", "values of analyses 301", "genius ids"]
)
def test_an_interrupted_adoption_resumes_to_the_same_database(
    make_empty_db: Callable[[], str], stop_after: str
) -> None:
    whole, resumed = legacy_db(make_empty_db, 1_200), legacy_db(make_empty_db, 1_200)
    assert asyncio.run(snapshot(whole)) == asyncio.run(snapshot(resumed))
    done = asyncio.run(_interrupted_adoption(resumed, stop_after))
    assert done[-1].startswith(stop_after) and "finalize" not in done
    # Half done: duplicates moved, the schema still the platform's.
    [part] = asyncio.run(fetch(resumed, f"SELECT count(*) FROM {adoption.DUPLICATES}"))
    assert part[0] > 0
    assert cli("db", "migrate", db_url=resumed).returncode == 2
    for url in (whole, resumed):
        r = cli("db", "adopt", "--batch-size", "300", db_url=url)
        assert r.returncode == 0, r.stderr
    assert asyncio.run(snapshot(whole)) == asyncio.run(snapshot(resumed))


def test_adopt_refuses_while_runs_are_active(db_url: str) -> None:
    asyncio.run(
        fetch(
            db_url,
            """INSERT INTO runs (uid, namespace, name, analyzer_type, model_version, spec, shards, state)
               VALUES ('u-1', 'team-a', 'nightly', 'llm', '1', '{}', 1, 'running') RETURNING id""",
        )
    )
    r = cli("db", "adopt", db_url=db_url)
    assert r.returncode == 2
    assert "AnalysisRun team-a/nightly (running)" in r.stderr and "Traceback" not in r.stderr


PARTIAL_SCHEMA = """
CREATE TABLE tracks (
    id           SERIAL PRIMARY KEY,
    title        VARCHAR(500),
    artist       VARCHAR(200),
    lyrics       TEXT,
    url          VARCHAR(500),
    created_at   TIMESTAMP DEFAULT NOW(),
    spotify_data JSONB,
    audio_features JSONB
);
CREATE TABLE analysis_results (
    id               SERIAL PRIMARY KEY,
    track_id         INTEGER REFERENCES tracks (id),
    analyzer_type    VARCHAR(50),
    sentiment        VARCHAR,
    confidence       NUMERIC(5, 4),
    themes           TEXT,
    analysis_data    JSONB,
    complexity_score NUMERIC(5, 4),
    created_at       TIMESTAMP DEFAULT NOW()
);
INSERT INTO tracks (title, artist, lyrics)
    SELECT 'song ' || g, 'artist ' || (g % 7), 'line one\nline two' FROM generate_series(1, 40) g;
INSERT INTO analysis_results (track_id, analyzer_type, sentiment, confidence, themes, created_at)
    SELECT 1 + g % 40, 'qwen-3-4b-fp8', 'positive', 0.5, '["a"]', TIMESTAMP '2025-01-01' + g * INTERVAL '1 s'
    FROM generate_series(1, 60) g;
"""


def test_adopt_a_database_with_only_some_of_the_columns(
    make_empty_db: Callable[[], str], db_url: str
) -> None:
    """The layout the platform's onboarding guide shows: no genius_id, no model_version."""
    url = make_empty_db()
    asyncio.run(fetch(url, "SELECT 1"))  # reachable
    conn_sql = PARTIAL_SCHEMA

    async def build() -> None:
        conn = await asyncpg.connect(url)
        await conn.execute(conn_sql)
        await conn.close()

    asyncio.run(build())
    r = cli("db", "adopt", "--json", db_url=url)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert "tracks.genius_id: column added (bigint)" in report["schema"]
    assert (
        "analysis_results.model_version: column added (character varying(100))" in report["schema"]
    )
    assert report["after"]["analysis_results"] == 40  # 60 rows, 40 tracks: 20 duplicates moved
    assert report["after"][adoption.DUPLICATES] == 20
    adopted, fresh = asyncio.run(snapshot(url)), asyncio.run(snapshot(db_url))
    assert adopted["migrations"] == fresh["migrations"]
    for table in ("tracks", "analysis_results"):
        a, f = adopted[f"{table} shape"], fresh[f"{table} shape"]
        assert {k: c for k, c in a.columns.items() if k in f.columns} == f.columns
    # Usable as any other database: a seed goes in next to the adopted tracks.
    assert cli("seed", "5", db_url=url).returncode == 0
    [n] = asyncio.run(fetch(url, "SELECT count(*) FROM tracks"))
    assert n[0] == 45


ALGORITHMIC = """
apiVersion: rapanalyzer.io/v1alpha1
kind: AnalysisRun
metadata: {name: after-adoption}
spec:
  analyzer: algorithmic
  shards: 2
  batchSize: 200
  selection: {onlyMissing: true}
"""

LLM = """
apiVersion: rapanalyzer.io/v1alpha1
kind: AnalysisRun
metadata: {name: llm-not-twice}
spec:
  analyzer: llm
  llm: {provider: novita, apiKeySecretRef: {name: novita, key: apiKey}}
  shards: 2
  selection:
    onlyMissing: true
    skipAnalyzedBy: [qwen-3-4b-fp8]
"""


def test_an_adopted_corpus_runs_and_its_legacy_labels_count(
    make_empty_db: Callable[[], str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = legacy_db(make_empty_db)
    # Qwen labelled all but the last 100 tracks.
    asyncio.run(
        fetch(
            url,
            "DELETE FROM analysis_results WHERE analyzer_type = 'qwen-3-4b-fp8' AND track_id > $1",
            N_TRACKS - 100,
        )
    )
    assert cli("db", "adopt", db_url=url).returncode == 0
    for analyzer in ("algorithmic", "emotion"):
        path = tmp_path / f"{analyzer}.yaml"
        path.write_text(ALGORITHMIC.replace("algorithmic", analyzer))
        r = cli("run", str(path), "--no-progress", db_url=url)
        assert r.returncode == 0, r.stderr
        assert "Succeeded" in r.stdout
        [n] = asyncio.run(
            fetch(url, "SELECT count(*) FROM analysis_results WHERE analyzer_type = $1", analyzer)
        )
        assert n[0] == N_TRACKS  # every adopted track, once (next to simplified_features)

    # The quality model learns from Qwen's adopted labels (its parsed answers).
    r = cli("model", "train", "quality", "--from-analyzer", "qwen-3-4b-fp8", "--folds", "3",
            "--json", db_url=url)  # fmt: skip
    assert r.returncode == 0, r.stderr
    trained = json.loads(r.stdout)
    assert trained["trainedFrom"] == "analyzer:qwen-3-4b-fp8"
    # Every kept Qwen row whose answer has a quality (not the NULL or unparsed ones).
    [labelled] = asyncio.run(
        fetch(
            url,
            """SELECT count(*) FROM analysis_results WHERE analyzer_type = 'qwen-3-4b-fp8'
               AND jsonb_typeof(analysis_data->'quality_metrics'->'overall_quality') = 'number'""",
        )
    )
    assert trained["metrics"]["tracks"] == labelled[0]
    assert 0.8 * (N_TRACKS - 100) < labelled[0] < N_TRACKS - 100

    # An llm run told that qwen-3-4b-fp8's labels count selects only the tracks it missed.
    from analyzer_runtime.contract import load_manifest
    from analyzer_runtime.ledger.planner import plan_manifest

    monkeypatch.setenv("NOVITA_API_KEY", "not-used-by-planning")

    async def plan() -> set[int]:
        conn = await asyncpg.connect(url)
        try:
            p = await plan_manifest(conn, load_manifest(LLM.encode()), "uid-llm")
            rows = await conn.fetch("SELECT item_id FROM run_items WHERE run_id = $1", p.run.id)
            return {r["item_id"] for r in rows}
        finally:
            await conn.close()

    assert asyncio.run(plan()) == set(range(N_TRACKS - 100 + 1, N_TRACKS + 1))
