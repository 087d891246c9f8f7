"""Labels adopted from the original platform are usable (issue 21), on real Postgres
with rows as `db adopt` leaves them (legacy analyzer names, model_version 'legacy',
the original Qwen answer as analysis_data, complexity_score NULL):

- selection.skipAnalyzedBy: an llm run told to skip `qwen-3-4b-fp8` plans, requests
  and stores none of the tracks it labelled and all the others (fake provider over
  HTTP); the local `rap-analyzer run` honours it too;
- `report trends` counts legacy LLM labels as LLM labels (this project's llm first),
  the other legacy analyzers per analyzer only; `report llm --analyzer`;
- `model train quality --from-analyzer qwen-3-4b-fp8` learns from them, with one-line
  refusals naming what is missing; a model without complexity labels scores quality.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from rap_devtools.fake_llm import FakeLLM, lyrics_digest

from analyzer_runtime import worker
from analyzer_runtime.contract import load_manifest
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger.planner import Selection
from analyzer_runtime.legacy_labels import COMPLEXITY_LEVELS
from analyzer_runtime.quality import training
from analyzer_runtime.reports import ReportError, collect
from analyzer_runtime.seed import seed
from tests.integration.clirun import cli
from tests.integration.llm.support import (  # noqa: F401
    fake,
    fake_server,
    manifest,
    plan,
    run_shards,
)

QWEN = "qwen-3-4b-fp8"
VALENCES = ["positive", "negative", "neutral", "Confident"]  # the last is no sentiment
THEMES = [["money", "street"], ["love"], []]
LEVELS = ["beginner", "intermediate", "advanced", "expert", "unknown"]


def _manifest(name: str, analyzer: str, **spec: Any) -> Any:
    return load_manifest(
        {
            "apiVersion": "rapanalyzer.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": name},
            "spec": {"analyzer": analyzer, "batchSize": 100, **spec},
        }
    )


async def _run(pool: asyncpg.Pool, m: Any, uid: str) -> None:
    async with pool.acquire() as conn:
        run = (await planner.plan_manifest(conn, m, uid)).run
    await asyncio.gather(*(worker.run_shard(pool, uid, i) for i in range(run.shards)))


def qwen_answer(i: int, quality: float | None) -> dict[str, Any]:
    """The original platform's Qwen answer (its prompt's JSON) as adopt keeps it."""
    return {
        "genre_analysis": {"primary_genre": "rap", "confidence": 0.9},
        "mood_analysis": {"primary_mood": "confident", "valence": VALENCES[i % 4]},
        "content_analysis": {"main_themes": THEMES[i % 3], "explicit_content": False},
        "technical_analysis": {"complexity_level": LEVELS[i % 5], "rhyme_scheme": "complex"},
        "quality_metrics": {"overall_quality": quality, "technical_skill": 0.7},
        "model": "qwen/qwen3-4b-fp8",
        "legacy": {"complexity_score": 3.0},  # out of range: adopt set the column NULL
    }


async def _insert_qwen(
    conn: asyncpg.Connection, rows: list[tuple[int, int, dict[str, Any]]]
) -> None:
    """(track id, index, answer) as legacy qwen-3-4b-fp8 rows: sentiment 'neutral' and
    themes [] as the platform's script stored them, two model versions."""
    await conn.executemany(
        """INSERT INTO analysis_results (track_id, analyzer_type, model_version, sentiment,
               confidence, themes, complexity_score, analysis_data, created_at)
           VALUES ($1, $2, $3, 'neutral', 0.8, '[]', NULL, $4::jsonb,
                   now() - interval '400 days')""",
        [(tid, QWEN, "legacy" if i % 2 else QWEN, json.dumps(a)) for tid, i, a in rows],
    )


async def _track_ids(pool: asyncpg.Pool) -> list[int]:
    async with pool.acquire() as conn:
        return [r[0] for r in await conn.fetch("SELECT id FROM tracks ORDER BY id")]


# ---- selection.skipAnalyzedBy ---------------------------------------------------------


async def test_llm_run_skips_what_qwen_labelled_and_pays_for_the_rest(
    pool: asyncpg.Pool,
    fake: FakeLLM,  # noqa: F811
) -> None:
    await seed(pool, 40)
    ids = await _track_ids(pool)
    qwen = set(ids[0::3])
    ollama = set(ids[1::5])
    async with pool.acquire() as conn:
        await _insert_qwen(conn, [(t, i, qwen_answer(i, 0.5)) for i, t in enumerate(sorted(qwen))])
        await conn.executemany(
            "INSERT INTO analysis_results (track_id, analyzer_type, model_version)"
            " VALUES ($1, 'ollama:llama3.2:3b', 'legacy')",
            [(t,) for t in ollama],
        )
        # The planner's selection, alone and with the other filters.
        sel = await planner.select_track_ids(conn, Selection(skip_analyzed_by=[QWEN]), "llm", "v1")
        assert sel == [t for t in ids if t not in qwen]
        both = await planner.select_track_ids(
            conn, Selection(skip_analyzed_by=[QWEN, "ollama:llama3.2:3b"]), "llm", "v1"
        )
        assert both == [t for t in ids if t not in qwen | ollama]
        limited = await planner.select_track_ids(
            conn, Selection(skip_analyzed_by=[QWEN], only_missing=False, limit=5), "llm", "v1"
        )
        assert limited == [t for t in ids if t not in qwen][:5]
        assert await planner.select_track_ids(conn, Selection(), "llm", "v1") == ids

    m = manifest("skip-qwen", fake.url, shards=2, batchSize=8,
                 selection={"skipAnalyzedBy": [QWEN]})  # fmt: skip
    run = await plan(pool, m, "uid-skip")
    assert run.total == len(ids) - len(qwen)
    async with pool.acquire() as conn:
        items = {r[0] for r in await conn.fetch(
            "SELECT item_id FROM run_items WHERE run_id = $1", run.id)}  # fmt: skip
    assert items == set(ids) - qwen
    reports = await run_shards(pool, "uid-skip", 2)
    assert all(r.finished for r in reports)
    async with pool.acquire() as conn:
        by_lyrics = {lyrics_digest(r["lyrics"]): r["id"]
                     for r in await conn.fetch("SELECT id, lyrics FROM tracks")}  # fmt: skip
    requested = {by_lyrics[d] for e in fake.log() for d in e["lyrics"]}
    assert requested == set(ids) - qwen  # not one request for a track Qwen labelled
    async with pool.acquire() as conn:
        stored = {r[0] for r in await conn.fetch(
            "SELECT track_id FROM analysis_results WHERE analyzer_type = 'llm'")}  # fmt: skip
    assert stored == set(ids) - qwen


async def test_local_run_honours_skip_analyzed_by(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    await seed(pool, 30)
    ids = await _track_ids(pool)
    legacy = set(ids[:12])
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO analysis_results (track_id, analyzer_type, model_version)"
            " VALUES ($1, 'simplified_features', 'legacy')",
            [(t,) for t in legacy],
        )
    yaml = tmp_path / "alg.yaml"
    yaml.write_text(
        "apiVersion: rapanalyzer.io/v1alpha1\nkind: AnalysisRun\nmetadata: {name: alg}\n"
        "spec:\n  analyzer: algorithmic\n  shards: 2\n"
        "  selection: {skipAnalyzedBy: [simplified_features]}\n"
    )
    got = cli("run", str(yaml), "--no-progress", db_url=db_url)
    assert got.returncode == 0, got.stderr
    async with pool.acquire() as conn:
        done = {r[0] for r in await conn.fetch(
            "SELECT track_id FROM analysis_results WHERE analyzer_type = 'algorithmic'")}  # fmt: skip
    empty = await _empty_lyrics(pool)
    assert done == set(ids) - legacy - empty and done


async def _empty_lyrics(pool: asyncpg.Pool) -> set[int]:
    async with pool.acquire() as conn:
        return {
            r[0]
            for r in await conn.fetch("SELECT id FROM tracks WHERE coalesce(lyrics, '') !~ '\\S'")
        }


# ---- a corpus with features and adopted labels ---------------------------------------


async def _adopted_corpus(pool: asyncpg.Pool, n: int) -> dict[str, Any]:
    """n seeded tracks with this project's algorithmic and emotion results; legacy Qwen
    answers for 3 of every 4 tracks with lyrics, whose overall_quality is the track's
    MATTR (a function of the features: learnable); simplified_features rows for 30 and
    mock_analyzer_v1 rows for 5 tracks."""
    await seed(pool, n)
    await _run(pool, _manifest("alg", "algorithmic", shards=2), "uid-alg")
    await _run(pool, _manifest("emo", "emotion", shards=2), "uid-emo")
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT track_id, (analysis_data->'lexical'->>'mattr')::float8 AS mattr
                 FROM analysis_results WHERE analyzer_type = 'algorithmic' ORDER BY track_id"""
        )
        labelled = [(r["track_id"], i, r["mattr"]) for i, r in enumerate(rows) if i % 4 != 3]
        answers = [(tid, i, qwen_answer(i, round(m, 4))) for tid, i, m in labelled]
        await _insert_qwen(conn, answers)
        ids = [r["track_id"] for r in rows]
        for analyzer, some in (("simplified_features", ids[:30]), ("mock_analyzer_v1", ids[:5])):
            await conn.executemany(
                "INSERT INTO analysis_results (track_id, analyzer_type, model_version,"
                " sentiment) VALUES ($1, $2, 'legacy', 'positive')",
                [(t, analyzer) for t in some],
            )
    return {"answers": {tid: (i, a) for tid, i, a in answers}}


def _expected_sentiment(i: int) -> str:
    v = VALENCES[i % 4].lower()
    return v if v in ("positive", "negative", "neutral", "mixed") else "neutral"


async def test_reports_read_adopted_llm_labels(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    corpus = await _adopted_corpus(pool, 120)
    answers = corpus["answers"]
    # One track also has this project's llm result: it wins over the legacy one.
    ours = next(iter(answers))
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO analysis_results (track_id, analyzer_type, model_version,
                   sentiment, themes, analysis_data)
               VALUES ($1, 'llm', 'v1', 'mixed', '["ours"]', '{"quality": 2}')""",
            ours,
        )
        report, _ = await collect.trends_report(conn, "year", sample=50)
        only_ours, _ = await collect.trends_report(conn, "year", sample=50, llm_analyzers=["llm"])

    assert report["analyzed_tracks"]["llm"] == len(answers)
    groups = report["groups"]
    assert sum(g["analyzed"]["llm"] for g in groups) == len(answers)
    want = {"positive": 0, "negative": 0, "neutral": 0, "mixed": 1}
    for tid, (i, _) in answers.items():
        if tid != ours:
            want[_expected_sentiment(i)] += 1
    got = {lb: 0.0 for lb in want}
    for g in groups:
        shares = g["sentiment"]["llm_labels"] or {}
        for lb, share in shares.items():
            got[lb] += share * g["analyzed"]["llm"]
    assert {lb: round(v) for lb, v in got.items()} == want
    # Themes from content_analysis.main_themes (the legacy themes column is []).
    theme_counts: dict[str, int] = {}
    for tid, (i, _) in answers.items():
        for t in ["ours"] if tid == ours else THEMES[i % 3]:
            theme_counts[t] = theme_counts.get(t, 0) + 1
    matrix = report["theme_matrix"]
    assert set(matrix["themes"]) == set(theme_counts)
    # Quality: 1 + 9 x overall_quality, per group.
    for g in groups:
        assert g["llm_quality_mean"] is not None and 1 <= g["llm_quality_mean"] <= 10
    a = report["analyzers"]
    assert a[QWEN] == {"tracks": len(answers), "legacy": True, "kind": "llm", "read_as": "llm"}
    assert a["simplified_features"] == {
        "tracks": 30, "legacy": True, "kind": "algorithmic", "read_as": None,
    }  # fmt: skip
    assert a["algorithmic"]["read_as"] == "algorithmic" and not a["algorithmic"]["legacy"]
    assert report["llm_analyzers"] == ["llm", QWEN, "gemma-3-27b-it", "ollama:llama3.2:3b"]
    # Only this project's llm: one track.
    assert only_ours["analyzed_tracks"]["llm"] == 1
    assert sum(g["analyzed"]["llm"] for g in only_ours["groups"]) == 1

    got_cli = cli("report", "trends", "--json", "--sample", "50", "--llm-analyzer", QWEN,
                  db_url=db_url)  # fmt: skip
    assert got_cli.returncode == 0, got_cli.stderr
    doc = json.loads(got_cli.stdout)
    assert doc["analyzed_tracks"]["llm"] == len(answers) and doc["llm_analyzers"] == [QWEN]
    page = tmp_path / "trends.html"
    got_cli = cli("report", "trends", "--sample", "50", "--out", str(page), db_url=db_url)
    assert got_cli.returncode == 0, got_cli.stderr
    html = page.read_text(encoding="utf-8")
    assert "Analyzers in this database" in html
    assert "<td>simplified_features</td>" in html and "counted only" in html


async def test_report_llm_on_an_adopted_analyzer(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    corpus = await _adopted_corpus(pool, 120)
    answers = corpus["answers"]
    async with pool.acquire() as conn:
        report, rows = await collect.llm_analyzer_report(conn, QWEN)
        legacy_only, _ = await collect.llm_analyzer_report(conn, QWEN, "legacy")
        with pytest.raises(ReportError, match=r"no results of analyzer 'qwen'; .*qwen-3-4b-fp8"):
            await collect.llm_analyzer_report(conn, "qwen")
        with pytest.raises(ReportError, match="its versions: legacy, qwen-3-4b-fp8"):
            await collect.llm_analyzer_report(conn, QWEN, "v7")
    a = report["analyzer"]
    n_legacy = sum(1 for i, _ in answers.values() if i % 2)
    assert a["tracks"] == len(answers) and a["legacy"] is True and a["kind"] == "llm"
    assert a["versions"] == {"legacy": n_legacy, QWEN: len(answers) - n_legacy}
    assert legacy_only["analyzer"]["tracks"] == n_legacy
    assert report["run"] is None and report["packing"] == []

    d = report["distributions"]
    qualities = [1 + 9 * ans["quality_metrics"]["overall_quality"] for _, ans in answers.values()]
    assert d["quality"]["n"] == len(answers)
    assert d["quality"]["mean"] == pytest.approx(sum(qualities) / len(qualities), abs=1e-3)
    levels = [COMPLEXITY_LEVELS.get(LEVELS[i % 5]) for i, _ in answers.values()]
    known = [x for x in levels if x is not None]
    assert d["complexity"]["n"] == len(known) < len(answers)
    assert d["complexity"]["mean"] == pytest.approx(sum(known) / len(known), abs=1e-3)
    labels: dict[str, int] = {}
    for i, _ in answers.values():
        labels[_expected_sentiment(i)] = labels.get(_expected_sentiment(i), 0) + 1
    assert d["sentiment_labels"] == labels
    # Compared with this project's algorithmic/emotion results on the same tracks.
    assert report["sentiment"]["tracks"] == len(answers)
    assert report["themes_vs_emotions"]["theme_counts"]["money"] == sum(
        1 for i, _ in answers.values() if i % 3 == 0
    )
    by_track = {r["track_id"]: r for r in rows}
    tid, (i, ans) = next(iter(answers.items()))
    assert by_track[tid]["themes"] == THEMES[i % 3]
    assert by_track[tid]["quality"] == pytest.approx(
        1 + 9 * ans["quality_metrics"]["overall_quality"]
    )

    out = tmp_path / "qwen.html"
    got = cli("report", "llm", "--analyzer", QWEN, "--out", str(out), db_url=db_url)
    assert got.returncode == 0, got.stderr
    html = out.read_text(encoding="utf-8")
    assert f"LLM agreement of analyzer {QWEN}" in html and "legacy mapping" in html
    assert html.count("data:image/png;base64,") >= 3
    got = cli("report", "llm", "--analyzer", QWEN, "--run", "x", db_url=db_url)
    assert got.returncode == 2 and "not both" in got.stderr
    got = cli("report", "llm", "--analyzer", "qwen", "--json", db_url=db_url)
    assert got.returncode == 2 and "no results of analyzer 'qwen'" in got.stderr


# ---- model train quality --from-analyzer ---------------------------------------------


async def test_train_quality_from_an_adopted_analyzer(pool: asyncpg.Pool, db_url: str) -> None:
    corpus = await _adopted_corpus(pool, 200)
    answers = corpus["answers"]
    with_level = sum(1 for i, _ in answers.values() if LEVELS[i % 5] in COMPLEXITY_LEVELS)
    async with pool.acquire() as conn:
        model, metrics = await training.train(conn, from_analyzer=QWEN, folds=3)
    assert model is not None and model.training_run == f"analyzer:{QWEN}"
    assert metrics["tracks"] == len(answers)
    assert metrics["labels"]["from"] == "analyzer" and metrics["labels"]["legacy"] is True
    q, c = metrics["targets"]["quality"], metrics["targets"]["complexity"]
    assert q["tracks"] == len(answers) and c["tracks"] == with_level
    # The labels are a function of the features (MATTR): learned, not guessed.
    assert q["gradient_boosting"]["mae"] < 0.5 * q["constant"]["mae"]
    assert "from analyzer 'qwen-3-4b-fp8'" in training.render_metrics(model, metrics)

    # One version only: its tracks (here too few to train on).
    n_legacy = sum(1 for i, _ in answers.values() if i % 2)
    async with pool.acquire() as conn:
        with pytest.raises(
            training.TrainingError,
            match=rf"analyzer 'qwen-3-4b-fp8' version 'legacy' has {n_legacy} tracks .*"
            rf" {n_legacy} of them with a quality label .* at least 100",
        ):
            await training.train(conn, from_analyzer=QWEN, analyzer_version="legacy")
    # The CLI as users run it.
    got = cli("model", "train", "quality", "--from-analyzer", QWEN, "--folds", "3", "--json",
              db_url=db_url)  # fmt: skip
    assert got.returncode == 0, got.stderr
    doc = json.loads(got.stdout)
    assert doc["trainedFrom"] == f"analyzer:{QWEN}" and doc["version"] == 2
    assert doc["metrics"]["tracks"] == len(answers)
    got = cli("model", "train", "quality", "--from-analyzer", QWEN, "--from-run", "x",
              db_url=db_url)  # fmt: skip
    assert got.returncode == 2 and "not both" in got.stderr


async def test_train_from_analyzer_refusals_and_a_quality_only_model(pool: asyncpg.Pool) -> None:
    corpus = await _adopted_corpus(pool, 160)
    answers = corpus["answers"]
    async with pool.acquire() as conn:
        with pytest.raises(training.TrainingError, match=r"no results of analyzer 'qwen'.*mock_"):
            await training.train(conn, from_analyzer="qwen")
        with pytest.raises(training.TrainingError, match=r"has 30 tracks .* 0 of them with a"):
            await training.train(conn, from_analyzer="simplified_features")
        # Features missing for some labelled tracks: the run to apply is named.
        gone = list(answers)[:7]
        await conn.execute(
            "DELETE FROM analysis_results WHERE analyzer_type = 'emotion'"
            " AND track_id = ANY($1::int[])",
            gone,
        )
        with pytest.raises(
            training.TrainingError,
            match=r"7 of the \d+ tracks labelled by analyzer 'qwen-3-4b-fp8' lack features"
            r" \(7 have no emotion result\): apply an `emotion` AnalysisRun",
        ):
            await training.train(conn, from_analyzer=QWEN)
        await conn.execute(
            "DELETE FROM analysis_results WHERE analyzer_type = $1 AND track_id = ANY($2::int[])",
            QWEN,
            gone,
        )
        # No complexity labels at all: a quality-only model, which says so.
        await conn.execute(
            "UPDATE analysis_results SET analysis_data = analysis_data - 'technical_analysis'"
            " WHERE analyzer_type = $1",
            QWEN,
        )
        model, metrics = await training.train(conn, from_analyzer=QWEN, folds=3)
    assert model is not None and list(metrics["targets"]) == ["quality"]
    assert "0 of the" in metrics["skipped_targets"]["complexity"]
    assert "complexity  not learned: 0 of the" in training.render_metrics(model, metrics)
    # What the message said: the emotion run (onlyMissing) gives the 7 tracks features.
    await _run(pool, _manifest("emo2", "emotion"), "uid-emo2")
    await _run(pool, _manifest("score", "quality", selection={"limit": 20}), "uid-q")
    async with pool.acquire() as conn:
        scored = await conn.fetch(
            "SELECT complexity_score, analysis_data FROM analysis_results"
            " WHERE analyzer_type = 'quality'"
        )
    assert len(scored) == 20
    for r in scored:
        data = json.loads(r["analysis_data"])
        assert r["complexity_score"] is None and data["complexity"] is None
        assert 1 <= data["quality"] <= 10 and data["trained_from"] == f"analyzer:{QWEN}"
