"""An embedded Postgres of its own with a low max_connections (a small managed
plan's size), for the connection-budget test and benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from analyzer_runtime.db import embedded
from rap_devtools.kubeapi import KubeApi


@contextlib.contextmanager
def limited_postgres(max_connections: int) -> Iterator[Any]:
    """The pgserver handle; its log (`.log`) is where refused connections show
    ("sorry, too many clients already")."""
    from pgserver._commands import pg_ctl

    home = Path(tempfile.mkdtemp(prefix="rap-pg-limited-"))
    server = embedded.start(home / "pgdata")
    try:

        async def limit() -> None:
            conn = await asyncpg.connect(server.get_uri())
            await conn.execute(f"ALTER SYSTEM SET max_connections = {int(max_connections)}")
            await conn.close()

        asyncio.run(limit())
        # max_connections takes a restart; pg_ctl keeps the socket options of the start,
        # not the log file (without -l the server would log to our stdout).
        pg_ctl(
            ["-w", "-l", str(server.log), "restart"], pgdata=server.pgdata, user=server.system_user
        )
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def refused(server: Any) -> int:
    """Connections the server has refused for want of a slot so far."""
    return Path(server.log).read_text(errors="replace").count("too many clients")


class Peaks:
    """Samples, until stopped: Postgres' client connections (all, and the shard pods'
    by their application_name) and the namespace's Jobs' active pods and parallelism."""

    def __init__(self, kube: KubeApi, url: str, namespace: str, period: float = 0.2) -> None:
        self.kube, self.url, self.namespace, self.period = kube, url, namespace, period
        self.connections = self.shard_connections = self.active = 0
        self.parallelism: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._sample()), daemon=True)

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def __repr__(self) -> str:
        return (
            f"Peaks(connections={self.connections}, shard_connections={self.shard_connections},"
            f" active={self.active}, parallelism={sorted(self.parallelism)})"
        )

    async def _sample(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while not self._stop.is_set():
                row = await conn.fetchrow(
                    """SELECT count(*) AS all,
                              count(*) FILTER (WHERE application_name LIKE 'rap-analyzer-shard-%')
                                AS shards
                         FROM pg_stat_activity WHERE backend_type = 'client backend'"""
                )
                assert row is not None
                self.connections = max(self.connections, int(row["all"]))
                self.shard_connections = max(self.shard_connections, int(row["shards"]))
                jobs = self.kube.get(f"/apis/batch/v1/namespaces/{self.namespace}/jobs")
                for job in jobs["items"]:
                    self.active = max(self.active, int(job.get("status", {}).get("active") or 0))
                    self.parallelism.add(int(job["spec"]["parallelism"]))
                # A sampling period, not a wait for a condition.
                await asyncio.sleep(self.period)
        finally:
            await conn.close()
