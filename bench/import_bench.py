"""Issue-21 benchmark: `rap-analyzer import` against `psql \\copy` of the same CSV, and
the import's peak memory.

    python -m bench.import_bench [N] [--rounds R] [--json OUT] [--keep-csv PATH]

N = 1,000,000 rows by default. One run, on a fresh embedded Postgres (pgserver) in a
temporary data directory:

1. write an N-row CSV in the original platform's track layout (genius_id, title,
   artist, album, release_date, url, lyrics, language): lyrics from a pool of 2,000
   synthetic songs (analyzer_runtime.corpus.synthetic, ~2.4 KB each), every row its
   own Genius id and title;
2. `psql \\copy` of the CSV into `copy_target`, a table with the same columns and the
   types `tracks` has (no indexes: the fastest a load into Postgres gets), once untimed
   (a fresh server creates its WAL files on the first big load), then timed;
3. `rap-analyzer import` of the same CSV into the (empty) `tracks` table, as a user
   runs it (a child process; its `--json` summary gives rows/s of the import itself,
   start-up and migration check excluded); peak RSS of the import process and of its
   reader process: the kernel's per-process maximum (os.wait4) and the largest sum
   of both seen by sampling every 0.25 s (psutil);
4. `\\copy` again, so two copies bracket each import on a machine whose load drifts
   (`--rounds R`: R imports, each followed by a copy).

ratio = import rows/s / the mean rows/s of the two copies around it. The goals
(issue 21): ratio >= 0.5, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

COLUMNS = ["genius_id", "title", "artist", "album", "release_date", "url", "lyrics", "language"]
COPY_TABLE = """CREATE TABLE copy_target (
    genius_id bigint, title text, artist text, album text, release_date date, url text,
    lyrics text, language text)"""
POOL = 2_000


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def psql_binary() -> Path | None:
    """pgserver ships the PostgreSQL client binaries next to the server's."""
    try:
        import pgserver
    except ImportError:
        return None
    found = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    return found if found.exists() else None


def write_csv(path: Path, n: int) -> dict[str, Any]:
    from analyzer_runtime.corpus.synthetic import generate_tracks

    pool = list(generate_tracks(POOL, seed=21))
    t0 = time.perf_counter()
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i in range(n):
            t = pool[i % POOL]
            w.writerow(
                [10_000_000 + i, f"{t.title} #{i}", t.artist, t.album, t.release_date,
                 f"{t.url}-{i}", t.lyrics, t.language]
            )  # fmt: skip
    return {
        "rows": n,
        "bytes": path.stat().st_size,
        "mean_lyrics_chars": round(sum(len(t.lyrics) for t in pool) / POOL),
        "write_s": round(time.perf_counter() - t0, 1),
    }


def psql(psql_bin: Path, url: str, command: str) -> None:
    env = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}
    subprocess.run(
        [str(psql_bin), url, "-v", "ON_ERROR_STOP=1", "-qc", command], check=True, env=env
    )


def copy_run(psql_bin: Path, url: str, path: Path, n: int) -> dict[str, Any]:
    psql(psql_bin, url, "DROP TABLE IF EXISTS copy_target")
    psql(psql_bin, url, COPY_TABLE)
    psql(psql_bin, url, "CHECKPOINT")
    t0 = time.perf_counter()
    psql(
        psql_bin,
        url,
        f"\\copy copy_target ({', '.join(COLUMNS)}) FROM '{path}' WITH (FORMAT csv, HEADER true)",
    )
    s = time.perf_counter() - t0
    psql(psql_bin, url, "DROP TABLE copy_target")
    return {"seconds": round(s, 2), "rows_per_s": round(n / s, 1)}


def import_run(url: str, path: Path, psql_bin: Path) -> dict[str, Any]:
    psql(psql_bin, url, "CHECKPOINT")
    env = {**os.environ, "DATABASE_URL": url, "METRICS_PORT": "0"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer_runtime", "import", str(path), "--json", "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
    )
    peaks = {"main": 0, "reader": 0, "sum": 0}
    done = threading.Event()

    def sample() -> None:
        # Light on purpose (a sampler is CPU taken from the two processes measured):
        # the reader is looked up once, then two /proc reads every 0.25 s.
        try:
            main = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        kids: list[psutil.Process] = []
        while not done.is_set():
            try:
                if not kids:
                    kids = main.children()
                rss_main = main.memory_info().rss
                rss_kids = sum(c.memory_info().rss for c in kids)
            except psutil.NoSuchProcess:
                break
            peaks["main"] = max(peaks["main"], rss_main)
            peaks["reader"] = max(peaks["reader"], rss_kids)
            peaks["sum"] = max(peaks["sum"], rss_main + rss_kids)
            done.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child (and its reader)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"import failed with exit code {proc.returncode}")
    summary = json.loads(stdout)
    mb = 1024 * 1024
    return {
        "summary": summary,
        "process_wall_s": round(wall, 1),
        # Linux reports ru_maxrss in KiB: the largest of the import process and its
        # reader (each one's own peak), as the kernel measured it.
        "max_rss_mb_kernel": round(usage.ru_maxrss * 1024 / mb, 1),
        "peak_rss_mb_main_sampled": round(peaks["main"] / mb, 1),
        "peak_rss_mb_reader_sampled": round(peaks["reader"] / mb, 1),
        "peak_rss_mb_sum_sampled": round(peaks["sum"] / mb, 1),
    }


def measure(url: str, n: int, csv_path: Path, psql_bin: Path, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"load_average_start": [round(x, 2) for x in os.getloadavg()]}
    subprocess.run(
        [sys.executable, "-m", "analyzer_runtime", "db", "migrate"],
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log(f"writing {n:,} rows to {csv_path}")
    out["csv"] = write_csv(csv_path, n)
    os.sync()  # the CSV's dirty pages written out before anything is timed
    log(f"csv: {out['csv']}")
    # Untimed: the first load into a fresh server also creates its WAL segment files
    # (~1 KB of WAL per row), which every later load recycles.
    log("\\copy (warm-up, not counted)")
    out["copy_warmup"] = copy_run(psql_bin, url, csv_path, n)
    log(f"\\copy (warm-up): {out['copy_warmup']}")
    copies, imports = [], []
    log("\\copy")
    copies.append(copy_run(psql_bin, url, csv_path, n))
    log(f"\\copy: {copies[-1]}")
    for _ in range(rounds):
        psql(psql_bin, url, "TRUNCATE tracks CASCADE")
        log("rap-analyzer import")
        imports.append(import_run(url, csv_path, psql_bin))
        log(f"import: { {k: v for k, v in imports[-1].items() if k != 'summary'} }")
        s = imports[-1]["summary"]
        assert s["inserted"] == n and s["rejected"] == 0, s
        log("\\copy")
        copies.append(copy_run(psql_bin, url, csv_path, n))
        log(f"\\copy: {copies[-1]}")
    out["copies"], out["imports"] = copies, imports
    # Each import against the mean of the two copies around it (the load drifts).
    ratios = []
    for i, imp in enumerate(imports):
        around = (copies[i]["rows_per_s"] + copies[i + 1]["rows_per_s"]) / 2
        ratios.append(round(imp["summary"]["rows_per_s"] / around, 3))
    out["ratios"] = ratios
    out["ratio_median"] = statistics.median(ratios)
    out["import_rows_per_s"] = [imp["summary"]["rows_per_s"] for imp in imports]
    out["copy_rows_per_s"] = [c["rows_per_s"] for c in copies]
    out["ratio_end_to_end"] = [
        round(
            n
            / imp["process_wall_s"]
            / ((copies[i]["rows_per_s"] + copies[i + 1]["rows_per_s"]) / 2),
            3,
        )
        for i, imp in enumerate(imports)
    ]
    out["peak_rss_mb_sum_sampled"] = max(imp["peak_rss_mb_sum_sampled"] for imp in imports)
    out["max_rss_mb_kernel"] = max(imp["max_rss_mb_kernel"] for imp in imports)
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--keep-csv", type=Path, help="write the CSV here and keep it")
    ap.add_argument("--rounds", type=int, default=1, help="imports, each between two \\copy runs")
    a = ap.parse_args()
    psql_bin = psql_binary()
    if psql_bin is None:
        raise SystemExit("no psql: the pgserver package (the `local` extra) ships it")
    from analyzer_runtime.db import embedded

    tmp = Path(tempfile.mkdtemp(prefix="rap-bench-import-"))
    server = embedded.start(tmp / "pgdata")
    csv_path = a.keep_csv or tmp / "tracks.csv"
    try:
        t0 = time.perf_counter()
        out = measure(server.get_uri(), a.n, csv_path, psql_bin, a.rounds)
        out["wall_s"] = round(time.perf_counter() - t0, 1)
        out["machine"] = (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        out["date"] = datetime.now(UTC).date().isoformat()
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
