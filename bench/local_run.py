"""Issue-2 benchmark: the local runner against the pure analyzer rate, in one session.

    python -m bench.local_run [N]        (N defaults to 57,718, the original corpus)

(a) pure `algorithmic` rate in one process, no database (bench/analyzer_rate.py);
(b) seeding N tracks, planning them, and a full `rap-analyzer run` with 2 shards,
    parallelism 2, on a fresh embedded Postgres;
efficiency = (N / (2 x pure rate)) / wall time of (b): 1.0 would mean the database
and the orchestration cost nothing on top of two cores of analysis.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.analyzer_rate import measure

SAMPLE = 4000  # tracks for the pure rate: enough for a stable figure, quick to run


def _manifest(path: Path) -> None:
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: rapanalyzer.io/v1alpha1
            kind: AnalysisRun
            metadata: {name: bench-algorithmic}
            spec: {analyzer: algorithmic, shards: 2, parallelism: 2, batchSize: 200}
            """
        )
    )


async def _plan_time(url: str) -> float:
    """Planning alone (selection + items + shards), on a dry-run uid."""
    from analyzer_runtime.contract import load_manifest
    from analyzer_runtime.ledger import planner
    from analyzer_runtime.ledger.connect import pool_for

    m = load_manifest(
        {
            "apiVersion": "rapanalyzer.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": "bench-plan"},
            "spec": {"analyzer": "emotion", "shards": 2},
        }
    )
    async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
        t0 = time.perf_counter()
        plan = await planner.plan_manifest(conn, m, "bench-plan-uid")
        elapsed = time.perf_counter() - t0
        assert plan.created
    return elapsed


def main(n: int) -> dict[str, Any]:
    pure = measure(SAMPLE, "algorithmic")
    cli = [sys.executable, "-m", "analyzer_runtime"]
    with tempfile.TemporaryDirectory(prefix="rap-bench-") as tmp:
        env = {**os.environ, "RAP_ANALYZER_DATA_DIR": tmp, "METRICS_PORT": "0"}
        env.pop("DATABASE_URL", None)
        # Keep one server up for the whole benchmark, so no step pays for a start.
        url = subprocess.run(
            [*cli, "db", "start"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        env["DATABASE_URL"] = url
        try:
            t0 = time.perf_counter()
            subprocess.run([*cli, "seed", str(n)], env=env, check=True, capture_output=True)
            seed_s = time.perf_counter() - t0
            plan_s = asyncio.run(_plan_time(url))
            manifest = Path(tmp) / "run.yaml"
            _manifest(manifest)
            t0 = time.perf_counter()
            res = subprocess.run(
                [*cli, "run", str(manifest), "--no-progress"],
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                raise RuntimeError(res.stdout + res.stderr)
            # Peak RSS over the runner and its waited-for shard processes (Linux: KiB).
            max_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        finally:
            env.pop("DATABASE_URL")
            subprocess.run([*cli, "db", "stop"], env=env, capture_output=True)
    ideal = n / (2 * pure["tracks_per_s"])
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "tracks": n,
        "pure_rate_tracks_per_s": pure["tracks_per_s"],
        "seed_s": round(seed_s, 1),
        "plan_s": round(plan_s, 2),
        "run_wall_s": round(wall, 1),
        "run_tracks_per_s": round(n / wall, 1),
        "efficiency": round(ideal / wall, 3),
        "max_rss_mb_runner_or_shard": round(max_rss_mb, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 57718), indent=2))
