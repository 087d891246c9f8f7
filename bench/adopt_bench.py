"""`rap-analyzer db adopt` on the original platform's database at its real size (issue
21): 57,718 tracks and 269,646 analyses with every quirk the platform had
(rap_devtools.legacy_platform: 61,933 qwen rows for 57,716 tracks, two
simplified_features rows per track, themes as text, confidences out of range, NULL
model versions, shared Genius ids).

On a fresh embedded Postgres: build that database, then time
1. `adopt --dry-run` (everything, rolled back: what a person waits for the plan), and
2. `adopt` itself (batches of --batch-size, then the finalize transaction, then the
   later migrations),
and check the result: every track kept, kept + moved analyses = the original rows.

    python -m bench.adopt_bench [--tracks 57718] [--batch-size 20000] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from rap_devtools import legacy_platform

from analyzer_runtime.db import adopt, embedded


async def measure(url: str, tracks: int, batch_size: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        by_analyzer = await legacy_platform.build(conn, tracks)
        built = time.perf_counter() - t0
        rows = sum(by_analyzer.values())
        t0 = time.perf_counter()
        plan = await adopt.adopt(conn, dry_run=True, batch_size=batch_size)
        dry = time.perf_counter() - t0
        steps: dict[str, float] = {}
        last = t0 = time.perf_counter()

        def step(name: str) -> None:
            nonlocal last
            kind = name.split(" of ")[0]  # the batches of one kind together
            steps[kind] = steps.get(kind, 0.0) + time.perf_counter() - last
            last = time.perf_counter()

        report = await adopt.adopt(conn, batch_size=batch_size, on_step=step)
        real = time.perf_counter() - t0
        kept = await conn.fetchval("SELECT count(*) FROM analysis_results")
        moved = await conn.fetchval(f"SELECT count(*) FROM {adopt.DUPLICATES}")
        assert kept + moved == rows, (kept, moved, rows)
        assert await conn.fetchval("SELECT count(*) FROM tracks") == tracks
        assert plan.after["analysis_results"] == kept
        return {
            "tracks": tracks,
            "analyses": rows,
            "by_analyzer": by_analyzer,
            "build_s": round(built, 1),
            "dry_run_s": round(dry, 1),
            "adopt_s": round(real, 1),
            "adopt_steps_s": {k: round(v, 1) for k, v in steps.items()},
            "kept": kept,
            "moved_aside": moved,
            "changes": [c.to_dict() for c in report.changes],
        }
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=int, default=legacy_platform.FULL_TRACKS)
    ap.add_argument("--batch-size", type=int, default=20_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rap-adopt-bench-"))
    server = embedded.start(home / "pgdata")
    try:

        async def go() -> dict[str, Any]:
            admin = await asyncpg.connect(server.get_uri())
            await admin.execute("CREATE DATABASE legacy")
            await admin.close()
            return await measure(server.get_uri("legacy"), args.tracks, args.batch_size)

        result = asyncio.run(go())
    finally:
        server.cleanup()
    result["machine"] = (
        f"{platform.node()} ({platform.machine()}, {__import__('os').cpu_count()} cores)"
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
