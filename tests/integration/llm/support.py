"""Shared pieces of the llm analyzer's integration tests: the fake provider as a real
HTTP server in its own process, manifests, planning and in-process shards."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from rap_devtools.fake_llm import FakeConfig, FakeLLM

from analyzer_runtime import localrun, worker
from analyzer_runtime.analyzers.llm.analyzer import LLMAnalyzer
from analyzer_runtime.contract import AnalysisRunManifest, load_manifest
from analyzer_runtime.contract.llm_models import endpoint_host
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger

API_KEY = "sk-test-integration-0123456789abcdef"
MODEL = "fake-qwen"
# The fake's results: a custom endpoint's version ends with its host (version_at).
VERSION_AT = "custom:" + MODEL + "@p1@{host}"
NOVITA_VERSION = "novita:qwen/qwen3-4b-fp8@p1"
PRICING = {"promptPerMillion": 0.5, "completionPerMillion": 1.5}


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeLLM]:
    with FakeLLM(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    """The module's fake provider, back to its defaults, with an empty log; the key in
    the environment the way the operator puts it in a pod's."""
    fake_server.configure(**dataclasses.asdict(FakeConfig(api_key=API_KEY)))
    fake_server.reset()
    monkeypatch.setenv("LLM_API_KEY", API_KEY)
    return fake_server


def manifest(
    name: str,
    url: str,
    *,
    llm: dict[str, Any] | None = None,
    provider: str = "custom",
    **spec: Any,
) -> AnalysisRunManifest:
    """An llm AnalysisRun against the fake at `url`: the `custom` provider with the
    fake's model and prices, or a preset (e.g. `novita`) with only its base URL moved."""
    base: dict[str, Any] = {"provider": provider, "baseURL": url}
    if provider == "custom":
        base |= {"model": MODEL, "pricing": PRICING}
    options = {**base, **(llm or {})}
    doc = {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {
            "analyzer": "llm",
            "llm": options,
            "retry": {"initialBackoffSeconds": 0.01},
            **spec,
        },
    }
    return load_manifest(doc)


async def plan(pool: asyncpg.Pool, m: AnalysisRunManifest, uid: str) -> shard_ledger.Run:
    async with pool.acquire() as conn:
        return (await planner.plan_manifest(conn, m, uid)).run


async def run_shards(pool: asyncpg.Pool, uid: str, shards: int) -> list[worker.ShardReport]:
    """Every shard at once in this process (each with its own analyzer, like pods)."""
    return list(await asyncio.gather(*(worker.run_shard(pool, uid, i) for i in range(shards))))


async def status(pool: asyncpg.Pool, uid: str) -> dict[str, Any]:
    st = await localrun.status_of(pool, uid)
    assert st is not None
    return st


def version_at(url: str, template: str = VERSION_AT) -> str:
    """The version results of a run against `url` are stored under."""
    return template.format(host=endpoint_host(url))


def analyzer_for(m: AnalysisRunManifest) -> LLMAnalyzer:
    spec = m.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    return LLMAnalyzer(**planner.analyzer_options(spec))
