"""Issue-9 benchmark: what leases cost the shard protocol, in one session.

    python -m bench.lease_cost [N] [BASELINE]     (N = 57,718; BASELINE = b0bcd7a)

BASELINE is the last commit before leases (the protocol without claim leases,
per-item crash charges or the heartbeat task). Its tree is checked out with `git
worktree` into a temporary folder, and the same `algorithmic` run (2 shards,
parallelism 2, batch 200, as bench.local_run) goes through `rap-analyzer run` twice
on identical fresh embedded databases holding the same seeded corpus: once with the
baseline's code (PYTHONPATH points the runner and its shard processes at it), once
with this tree's. ratio = tracks/s after / tracks/s before; the goal is >= 0.95.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.local_run import _manifest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "b0bcd7a"


def _timed_run(n: int, code: Path | None, tmp: Path) -> float:
    """Seconds of `rap-analyzer run` over n fresh tracks with the code at `code`
    (None: this tree). Everything runs in `tmp`, so that the current directory does
    not put this tree's packages first on sys.path."""
    env = {**os.environ, "RAP_ANALYZER_DATA_DIR": str(tmp / "data"), "METRICS_PORT": "0"}
    env.pop("DATABASE_URL", None)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(code / p) for p in (".", "operator", "devtools"))
    cli = [sys.executable, "-m", "analyzer_runtime"]
    where = subprocess.run(
        [sys.executable, "-c", "import analyzer_runtime as a; print(a.__file__)"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp,
    ).stdout  # fmt: skip
    assert where.startswith(str(code or ROOT)), f"the run would use {where}"
    url = subprocess.run(
        [*cli, "db", "start"], env=env, capture_output=True, text=True, check=True, cwd=tmp
    ).stdout.strip()
    env["DATABASE_URL"] = url
    try:
        subprocess.run([*cli, "seed", str(n)], env=env, check=True, capture_output=True, cwd=tmp)
        manifest = tmp / "run.yaml"
        _manifest(manifest)
        t0 = time.perf_counter()
        res = subprocess.run(
            [*cli, "run", str(manifest), "--no-progress"],
            env=env, capture_output=True, text=True, cwd=tmp,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        if res.returncode != 0 or f"{n}/{n} (100.0%)" not in res.stdout:
            raise RuntimeError(res.stdout + res.stderr)
        return wall
    finally:
        env.pop("DATABASE_URL")
        subprocess.run([*cli, "db", "stop"], env=env, capture_output=True, cwd=tmp)


def main(n: int, baseline: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rap-bench-lease-") as tmp_s:
        tmp = Path(tmp_s)
        tree = tmp / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), baseline],
            check=True,
            capture_output=True,
        )
        try:
            (tmp / "before").mkdir()
            (tmp / "after").mkdir()
            before = _timed_run(n, tree, tmp / "before")
            after = _timed_run(n, None, tmp / "after")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
            )
            shutil.rmtree(tree, ignore_errors=True)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "tracks": n,
        "baseline": baseline,
        "before_s": round(before, 1),
        "after_s": round(after, 1),
        "before_tracks_per_s": round(n / before, 1),
        "after_tracks_per_s": round(n / after, 1),
        "ratio_after_over_before": round(before / after, 3),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(
        json.dumps(
            main(int(args[0]) if args else 57718, args[1] if len(args) > 1 else BASELINE),
            indent=2,
        )
    )
