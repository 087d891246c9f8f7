"""`rap-analyzer` as a user runs it: real processes, a real database."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
import pytest

from analyzer_runtime.seed import seed
from tests.integration.clirun import ROOT, cli

INVALID = sorted((ROOT / "tests/fixtures/invalid_runs").glob("*.yaml"))


async def test_run_example_succeeds_and_prints_the_status(pool: asyncpg.Pool, db_url: str) -> None:
    await seed(pool, 300)
    res = await asyncio.to_thread(
        cli, "run", "examples/analysisrun.yaml", "--no-progress", db_url=db_url
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Succeeded" in res.stdout
    assert re.search(r"300/300 \(100\.0%\)", res.stdout), res.stdout
    async with pool.acquire() as conn:
        rows = await conn.fetchval("SELECT count(*) FROM analysis_results")
        state = await conn.fetchval("SELECT state FROM runs")
    assert rows == 300 and state == "succeeded"

    name = re.search(r"^\s*name:\s*(\S+)", (ROOT / "examples/analysisrun.yaml").read_text(), re.M)
    assert name
    st = await asyncio.to_thread(cli, "status", name.group(1), db_url=db_url)
    assert st.returncode == 0 and "300/300" in st.stdout, st.stdout + st.stderr

    # Same YAML again: a new run, which with onlyMissing has nothing left to do.
    again = await asyncio.to_thread(
        cli, "run", "examples/analysisrun.yaml", "--no-progress", db_url=db_url
    )
    assert again.returncode == 0 and "0/0" in again.stdout, again.stdout


def test_invalid_fixtures_exist() -> None:
    assert len(INVALID) >= 5


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_yaml_fails_with_a_clear_message(path: Path, db_url: str) -> None:
    expect = re.search(r"^# expect: (.+)$", path.read_text(), re.M)
    assert expect, f"{path} lacks an '# expect:' line"
    for cmd in ("validate", "run"):
        res = cli(cmd, str(path), db_url=db_url)
        assert res.returncode == 2, res.stdout + res.stderr
        assert expect.group(1).strip() in res.stderr, res.stderr
        assert "Traceback" not in res.stderr


def test_missing_file_is_exit_2(db_url: str) -> None:
    res = cli("run", "no/such.yaml", db_url=db_url)
    assert res.returncode == 2 and "no/such.yaml" in res.stderr
