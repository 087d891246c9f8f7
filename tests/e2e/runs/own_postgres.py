"""A Postgres server of a test's own (pgserver in a temp dir, migrated and seeded),
for the tests that freeze it (SIGSTOP on every server process): freezing the
session's shared server would stall every other test."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from rap_devtools.corpus_db import seeded_database

from analyzer_runtime.db import embedded


@contextlib.contextmanager
def own_postgres(tracks: int) -> Iterator[tuple[Any, Path]]:
    """(server, data directory) of a fresh server whose default database is migrated
    and seeded with `tracks` tracks. It is never left stopped."""
    home = Path(tempfile.mkdtemp(prefix="rap-pg-own-"))
    pgdata = home / "pgdata"
    server = embedded.start(pgdata)

    try:
        asyncio.run(seeded_database(server, tracks))
        yield server, pgdata
    finally:
        signal_all(pgdata, signal.SIGCONT)
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def server_processes(pgdata: Path) -> list[psutil.Process]:
    """The postmaster (its pid is the first line of postmaster.pid) and every process
    it forked: backends, checkpointer, WAL writer, autovacuum."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return []
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    return [postmaster, *postmaster.children(recursive=True)]


def signal_all(pgdata: Path, sig: signal.Signals) -> int:
    """Send `sig` to every server process; how many got it."""
    sent = 0
    for p in server_processes(pgdata):
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(sig)
            sent += 1
    return sent
