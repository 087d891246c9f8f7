"""Issue 16, migration 0011: what the run_items -> runs foreign key cost planning.

    python -m bench.million_fk [--keep DIR] [--rounds 2]

On a database seeded by `bench.million` (`--keep DIR`, the same directory, or
DATABASE_URL), plans the same 1,000,000-track run (onlyMissing of an analyzer with no
results, 1,000 shards) with today's schema and with the foreign key put back as it
was before 0011 (ON DELETE CASCADE), alternating, each in a transaction rolled back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import asyncpg

from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger.planner import Selection

FK = """ALTER TABLE run_items ADD CONSTRAINT run_items_run_id_fkey
        FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE"""


class _Rollback(Exception):
    pass


async def plan_once(conn: asyncpg.Connection, uid: str, with_fk: bool) -> float:
    seconds = 0.0
    try:
        async with conn.transaction():
            if with_fk:
                await conn.execute(FK)
            t0 = time.perf_counter()
            plan = await planner.plan_analysis(
                conn, uid=uid, name=uid, namespace=None, spec={}, selection=Selection(),
                shards=1000, analyzer_type="fk-bench", model_version="1",
            )  # fmt: skip
            seconds = time.perf_counter() - t0
            assert plan.created and plan.run.total == await conn.fetchval(
                "SELECT count(*) FROM tracks"
            )
            raise _Rollback
    except _Rollback:
        pass
    return seconds


async def measure(url: str, rounds: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    out: dict[str, list[float]] = {"with_fk_s": [], "without_fk_s": []}
    for k in range(rounds):
        out["with_fk_s"].append(round(await plan_once(conn, f"fk-{k}", True), 2))
        out["without_fk_s"].append(round(await plan_once(conn, f"nofk-{k}", False), 2))
    await conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="the data dir bench.million --keep seeded")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    url = os.environ.get("DATABASE_URL")
    server = None
    if not url:
        if a.keep is None:
            ap.error("needs --keep DIR (seeded by bench.million --keep DIR) or DATABASE_URL")
        from analyzer_runtime.db import embedded

        server = embedded.start(a.keep / "pgdata")
        url = server.get_uri()
    try:
        print(json.dumps(asyncio.run(measure(url, a.rounds)), indent=2))
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
