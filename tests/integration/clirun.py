"""Running `rap-analyzer` (python -m analyzer_runtime) as a user does, from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
