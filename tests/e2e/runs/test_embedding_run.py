"""An `embedding` AnalysisRun end to end (issue 13): the operator on the real control
plane, 2 shard pods (local processes) loading the real all-MiniLM-L6-v2, the run
watched to Succeeded with one vector per selected track."""

from __future__ import annotations

import json

import pytest

from tests.e2e.runs.operator_env import Env, exact, run_manifest

pytestmark = pytest.mark.e2e

# Whole synthetic lyrics are ~3 model windows each: 40 of them are well under a
# minute of CPU for the two shards on 2 cores.
TRACKS = 40


def test_embedding_run_succeeds_with_one_vector_per_track(env: Env, namespace: str) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    m = run_manifest(
        "embed", analyzer="embedding", shards=2, parallelism=2, batchSize=8,
        selection={"limit": TRACKS},
    )  # fmt: skip
    res = env.apply(namespace, m)
    assert res.returncode == 0, res.stderr
    st = env.wait_status(
        namespace, "embed", lambda s: s.get("phase") in ("Succeeded", "Failed"), timeout=300
    )
    assert st["phase"] == "Succeeded", json.dumps(st, indent=1)
    assert (st["processed"], st["failed"], st["total"]) == (TRACKS, 0, TRACKS)
    assert st["progress"] == f"{TRACKS}/{TRACKS} (100.0%)"
    exact(env, url, TRACKS)
    assert env.sql(url, "SELECT count(*) FROM track_embeddings") == TRACKS
    assert env.sql(url, "SELECT count(DISTINCT track_id) FROM track_embeddings") == TRACKS
    assert env.sql(url, "SELECT min(analyzer_type) FROM analysis_results") == "embedding"
    # Long lyrics really were windowed (not truncated to the model's 256 tokens).
    assert env.sql(url, "SELECT max((analysis_data->>'windows')::int) FROM analysis_results") > 1
    row = env.kubectl("get", "ar", "embed", "-n", namespace, "--no-headers").stdout.split()
    assert row[:4] == ["embed", "embedding", "Succeeded", f"{TRACKS}/{TRACKS}"]
