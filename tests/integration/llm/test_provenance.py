"""A preset's rows belong to the preset's endpoint: a run of the same preset and model
on another endpoint (a baseURL override) writes its own rows, under a version with
the endpoint's host, and never overwrites the preset's or counts as them when a run
selects "tracks without this version". Either order; real Postgres, the provider
played by the fake over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from rap_devtools.fake_llm import FakeLLM

from analyzer_runtime import worker
from analyzer_runtime.analyzers.llm.analyzer import LLMAnalyzer
from analyzer_runtime.contract import AnalysisRunManifest, load_manifest
from analyzer_runtime.contract.llm_models import endpoint_host
from tests.integration.conftest import insert_tracks
from tests.integration.llm.support import NOVITA_VERSION, manifest, plan

pytestmark = pytest.mark.timeout(120)
TRACKS = [("A", "one", "gold money love win"), ("B", "two", "pain cold alone"),
          ("C", "three", "party club dance night")]  # fmt: skip


def _preset_run(name: str) -> AnalysisRunManifest:
    """The novita preset on its own endpoint (no baseURL)."""
    spec = {"analyzer": "llm", "llm": {"provider": "novita"}}
    return load_manifest(
        {
            "apiVersion": "rapanalyzer.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": name},
            "spec": {**spec, "retry": {"initialBackoffSeconds": 0.01}},
        }
    )


async def _run_preset(pool: asyncpg.Pool, fake: FakeLLM, name: str) -> int:
    """Plan a preset run and run its shard with Novita played by the fake: the run as
    planned (its version, its selection) is the preset's; only the answers come from
    the fake. Returns the number of tracks planned."""
    run = await plan(pool, _preset_run(name), f"uid-{name}")
    assert run.model_version == NOVITA_VERSION
    if run.total:
        played = LLMAnalyzer(provider="novita", baseURL=fake.url)
        report = await worker.run_shard(pool, run.uid, 0, analyzer=played)
        assert report.finished and report.done == run.total
    return run.total


async def _run_proxy(pool: asyncpg.Pool, fake: FakeLLM, name: str) -> int:
    """The same preset and model, its baseURL moved to another endpoint (the fake)."""
    run = await plan(pool, manifest(name, fake.url, provider="novita"), f"uid-{name}")
    assert run.model_version == f"{NOVITA_VERSION}@{endpoint_host(fake.url)}"
    report = await worker.run_shard(pool, run.uid, 0)
    assert report.finished and report.done == run.total
    return run.total


async def _rows(pool: asyncpg.Pool) -> dict[str, dict[int, dict[str, Any]]]:
    """Every llm row: by version, by track (all columns but the serial id)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM analysis_results WHERE analyzer_type = 'llm'")
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["model_version"], {})[r["track_id"]] = dict(r)
    return out


async def test_a_proxy_run_after_a_preset_run_writes_its_own_rows(
    pool: asyncpg.Pool, fake: FakeLLM
) -> None:
    ids = await insert_tracks(pool, TRACKS)
    assert await _run_preset(pool, fake, "preset") == len(ids)
    preset = (await _rows(pool))[NOVITA_VERSION]
    assert set(preset) == set(ids)

    # The preset's rows do not count as the proxy's: every track is selected again.
    assert await _run_proxy(pool, fake, "proxy") == len(ids)
    after = await _rows(pool)
    proxy_version = f"{NOVITA_VERSION}@{endpoint_host(fake.url)}"
    assert set(after) == {NOVITA_VERSION, proxy_version}
    assert after[NOVITA_VERSION] == preset  # untouched: same row, same time, same data
    assert set(after[proxy_version]) == set(ids)
    for row in after[proxy_version].values():
        assert json.loads(row["analysis_data"])["endpoint"] == endpoint_host(fake.url)
    for row in after[NOVITA_VERSION].values():
        assert json.loads(row["analysis_data"])["provider"] == "novita"
    # And the preset still has every track: a new preset run selects none.
    assert await _run_preset(pool, fake, "preset-again") == 0


async def test_a_preset_run_after_a_proxy_run_still_selects_every_track(
    pool: asyncpg.Pool, fake: FakeLLM
) -> None:
    ids = await insert_tracks(pool, TRACKS)
    assert await _run_proxy(pool, fake, "proxy") == len(ids)
    proxy_version = f"{NOVITA_VERSION}@{endpoint_host(fake.url)}"
    proxy = (await _rows(pool))[proxy_version]
    assert set(proxy) == set(ids)

    assert await _run_preset(pool, fake, "preset") == len(ids)
    after = await _rows(pool)
    assert set(after) == {NOVITA_VERSION, proxy_version}
    assert after[proxy_version] == proxy
    assert set(after[NOVITA_VERSION]) == set(ids)
