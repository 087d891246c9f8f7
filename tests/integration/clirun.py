"""Running `rap-analyzer` (python -m analyzer_runtime) as a user does, from tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from rap_devtools.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def cli_env(db_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "METRICS_PORT": "0", **extra}
    if db_url:
        env["DATABASE_URL"] = db_url
    return env


def cli(
    *args: str, db_url: str | None = None, timeout: int = 300, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analyzer_runtime", *args],
        env=cli_env(db_url, **extra), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def spawn(*args: str, db_url: str | None = None, **extra: str) -> subprocess.Popen[str]:
    """A CLI process in the background (stdout/stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "analyzer_runtime", *args],
        env=cli_env(db_url, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT,
    )  # fmt: skip


@contextmanager
def serving(
    port: int, env: dict[str, str], ready_timeout: float = 60
) -> Iterator[Callable[[], str]]:
    """`rap-analyzer serve --port PORT` with this environment, once its /readyz
    answers 200; stopped on exit. Yields a function returning its output so far
    (kept in a file: a pipe nobody reads would fill up and block the server)."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer_runtime", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )  # fmt: skip

    def output() -> str:
        log.seek(0)
        return log.read()

    def ready() -> bool:  # connection errors are "not yet" to wait_for
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200

    def exited() -> str | None:
        return None if proc.poll() is None else f"exited {proc.returncode}: {output()}"

    try:
        wait_for(ready, timeout=ready_timeout, interval=0.1, what=f"serve on port {port} ready",
                 describe=output, give_up=exited)  # fmt: skip
        yield output
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
