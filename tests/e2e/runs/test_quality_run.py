"""A `quality` AnalysisRun end to end (issue 15): applied before any model exists it
stays Pending with Valid=False naming the command that trains one; once the model is
trained (labels from the fake provider, features from algorithmic + emotion runs, all
in the run's database) the same resource is planned by itself, its 2 shard pods load
the model and it reaches Succeeded with one result per selected track."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rap_devtools.fake_llm import FakeLLM

from tests.e2e.runs.operator_env import Env, run_manifest
from tests.integration.clirun import cli

pytestmark = pytest.mark.e2e

KEY = "sk-e2e-quality-0123456789abcdef"
TRACKS = 150  # tracks 1..150 of the seeded corpus: labelled, featured, then scored
SELECTION = {"idRange": {"from": 1, "to": TRACKS}}
TRAIN = "rap-analyzer model train quality --from-run"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM(api_key=KEY, labels="features", seed=3) as server:
        yield server


def _valid(st: dict[str, object]) -> dict[str, object]:
    conds = st.get("conditions") or []
    assert isinstance(conds, list)
    return next((c for c in conds if c.get("type") == "Valid"), {})


def _local_run(tmp: Path, url: str, name: str, **spec: object) -> None:
    """A run of the same database by `rap-analyzer run` (shards as local processes)."""
    path = tmp / f"{name}.yaml"
    m = run_manifest(name, shards=1, selection=SELECTION, **spec)
    m["spec"].pop("parallelism")
    path.write_text(yaml.safe_dump(m))
    got = cli("run", str(path), "--no-progress", db_url=url, LLM_API_KEY=KEY, timeout=600)
    assert got.returncode == 0, got.stdout + got.stderr


def test_quality_run_waits_for_its_model_then_succeeds(
    env: Env, namespace: str, fake: FakeLLM, tmp_path: Path
) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    m = run_manifest("score", analyzer="quality", shards=2, parallelism=2, batchSize=25,
                     selection=SELECTION)  # fmt: skip
    res = env.apply(namespace, m)
    assert res.returncode == 0, res.stderr
    st = env.wait_status(
        namespace, "score", lambda s: _valid(s).get("status") == "False", timeout=120
    )
    assert st["phase"] == "Pending", json.dumps(st, indent=1)
    assert _valid(st)["reason"] == "InputMissing" and TRAIN in str(_valid(st)["message"])
    assert not env.jobs(namespace, env.get(namespace, "score")["metadata"]["uid"])

    _local_run(tmp_path, url, "alg", analyzer="algorithmic")
    _local_run(tmp_path, url, "emo", analyzer="emotion")
    llm = {"provider": "custom", "baseURL": fake.url, "model": "fake-qwen", "tracksPerRequest": 10}
    _local_run(tmp_path, url, "labels", analyzer="llm", llm=llm)
    got = cli("model", "train", "quality", "--from-run", "labels", db_url=url, timeout=600)
    assert got.returncode == 0, got.stderr
    assert "version 1" in got.stdout

    st = env.wait_status(
        namespace, "score", lambda s: s.get("phase") in ("Succeeded", "Failed"), timeout=300
    )
    assert st["phase"] == "Succeeded", json.dumps(st, indent=1)
    assert (st["processed"], st["failed"], st["total"]) == (TRACKS, 0, TRACKS)
    q = "SELECT count(*) FROM analysis_results WHERE analyzer_type = 'quality'"
    assert env.sql(url, q) == TRACKS
    q = "SELECT count(DISTINCT (analysis_data->>'model_version')) FROM analysis_results"
    assert env.sql(url, q + " WHERE analyzer_type = 'quality'") == 1
    counted = env.sql(
        url, "SELECT sum(processed) FROM run_shards s JOIN runs r ON r.id = s.run_id"
        " WHERE r.analyzer_type = 'quality'"
    )  # fmt: skip
    assert counted == TRACKS
    row = env.kubectl("get", "ar", "score", "-n", namespace, "--no-headers").stdout.split()
    assert row[:4] == ["score", "quality", "Succeeded", f"{TRACKS}/{TRACKS}"]
