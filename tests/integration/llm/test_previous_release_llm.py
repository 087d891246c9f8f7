"""Expand/contract for the endpoint in the version: nothing in the schema changed (the
version is a value of analysis_results.model_version, planned into runs.model_version),
so a shard of the previous release (v0.1.0, its own code from `git archive`, in its
own process) that picks up a run this release planned on a proxy endpoint writes
under the planned version - the one with the host - and leaves the preset's rows as
they are. Real Postgres, the fake provider over real HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from rap_devtools.fake_llm import FakeLLM
from rap_devtools.previous_release import materialise

from analyzer_runtime.contract.llm_models import endpoint_host
from tests.integration.conftest import insert_tracks
from tests.integration.llm.support import API_KEY, NOVITA_VERSION, manifest, plan

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def previous() -> Iterator[Path]:
    with materialise() as tree:
        yield tree


def _previous_shard(db_url: str, tree: Path, uid: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "METRICS_PORT": "0", "LLM_API_KEY": API_KEY,
           "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "operator")])}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "analyzer_runtime", "analyze", "--run-id", uid, "--shard", "0"],
        env=env, cwd=tree, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


async def test_a_previous_release_shard_writes_the_planned_endpoint_version(
    pool: asyncpg.Pool, db_url: str, fake: FakeLLM, previous: Path
) -> None:
    ids = await insert_tracks(pool, [("A", "one", "gold money love win"),
                                     ("B", "two", "pain cold alone")])  # fmt: skip
    async with pool.acquire() as conn:  # the preset's rows, as an earlier Novita run left them
        await conn.executemany(
            "INSERT INTO analysis_results (track_id, analyzer_type, model_version, sentiment)"
            " VALUES ($1, 'llm', $2, 'neutral')",
            [(t, NOVITA_VERSION) for t in ids],
        )
        preset = await conn.fetch(
            "SELECT * FROM analysis_results WHERE model_version = $1 ORDER BY id", NOVITA_VERSION
        )
    run = await plan(pool, manifest("proxy", fake.url, provider="novita",
                                    llm={"tracksPerRequest": 2}), "uid-proxy")  # fmt: skip
    version = f"{NOVITA_VERSION}@{endpoint_host(fake.url)}"
    assert run.model_version == version and run.total == len(ids)

    await asyncio.to_thread(_previous_shard, db_url, previous, run.uid)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT track_id, model_version FROM analysis_results WHERE analyzer_type = 'llm'"
            " AND model_version <> $1",
            NOVITA_VERSION,
        )
        assert (
            await conn.fetch(
                "SELECT * FROM analysis_results WHERE model_version = $1 ORDER BY id",
                NOVITA_VERSION,
            )
            == preset
        )
    assert sorted((r["track_id"], r["model_version"]) for r in rows) == [(t, version) for t in ids]
    assert len(fake.log()) == 1  # the old shard sent one packed request to the proxy
