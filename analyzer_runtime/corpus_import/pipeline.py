"""An import from start to end: read -> check -> drop duplicates -> chunks -> Postgres.

This process opens the file and maps its columns (`prepare`: bad input is refused
before the database is touched), then starts the reader process (worker) and loads
the chunks it sends, one transaction each (loader). Reading and checking (Python
CPU, in the reader) overlap with merging (the Postgres server's CPU). Memory stays
bounded by a few chunks plus ~8 bytes per distinct key (seen.SeenKeys), whatever
the file's size.
"""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg

from analyzer_runtime.corpus_import import readers, worker
from analyzer_runtime.corpus_import.loader import Loader, OnConflict, column_limits
from analyzer_runtime.corpus_import.mapping import Mapping, MappingError, resolve
from analyzer_runtime.corpus_import.readers import Reader, UnreadableFile
from analyzer_runtime.corpus_import.rejects import default_path

CHUNK_ROWS = 5_000
READ_AHEAD = 2  # chunks received and waiting while one is loaded


class ImportInputError(Exception):
    """The file, its format, the mapping or the rejects path is not usable (exit 2)."""


@dataclass
class Progress:
    read: int
    rejected: int
    inserted: int
    position: int  # in reader.unit
    total: int | None
    seconds: float


@dataclass
class Summary:
    file: str
    format: str
    on_conflict: str
    mapping: dict[str, str]
    ignored_columns: list[str]
    read: int = 0
    inserted: int = 0
    updated: int = 0
    skipped_existing: int = 0
    duplicates_in_file: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejects_file: str | None = None
    seconds: float = 0.0
    rows_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Prepared:
    """An opened file with its mapping: everything checked before the database is."""

    path: Path
    format: str
    table: str
    reader: Reader
    mapping: Mapping
    rejects_path: Path

    def close(self) -> None:
        self.reader.close()


def prepare(
    path: Path,
    *,
    fmt: str | None = None,
    maps: dict[str, str | None] | None = None,
    rejects: Path | None = None,
    table: str = "tracks",
) -> Prepared:
    """Open the file and map its columns; raises ImportInputError with the reason."""
    if fmt is None:
        fmt = readers.detect_format(path)
        if fmt is None:
            raise ImportInputError(
                f"{path}: cannot tell the format from the name;"
                f" give --format ({', '.join(readers.FORMATS)})"
            )
    if not path.exists():
        raise ImportInputError(f"{path}: no such file")
    if path.is_dir():
        raise ImportInputError(f"{path}: is a directory")
    rejects_path = rejects or default_path(path)
    if not os.access(rejects_path.parent, os.W_OK):
        raise ImportInputError(
            f"cannot write the rejects file {rejects_path} (its folder is not writable);"
            " give --rejects PATH"
        )
    try:
        reader = readers.open_reader(path, fmt, table=table)
    except UnreadableFile as exc:
        raise ImportInputError(str(exc)) from None
    try:
        mapping = resolve(reader.columns, maps)
    except MappingError as exc:
        reader.close()
        raise ImportInputError(f"{path}: {exc}") from None
    return Prepared(path, fmt, table, reader, mapping, rejects_path)


class _Inbox:
    """The reader's messages, taken off the pipe by a thread as they come, up to `depth`
    chunks ahead of the one being loaded: the reader never waits while a chunk is
    merged (with only the pipe between them it would, chunk after chunk)."""

    def __init__(self, conn: Connection, depth: int) -> None:
        self._conn = conn
        self._queue: queue.Queue[tuple[Any, bytes | None]] = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-inbox", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                msg: Any = self._conn.recv()
                payload = self._conn.recv_bytes() if isinstance(msg, worker.Chunk) else None
            except (EOFError, OSError):
                msg, payload = None, None  # the reader is gone
            while not self._closed.is_set():
                try:
                    self._queue.put((msg, payload), timeout=0.2)
                    break
                except queue.Full:
                    continue
            if not isinstance(msg, worker.Chunk):
                return

    async def get(self) -> tuple[Any, bytes | None]:
        """The next message (None: the reader ended without one) and a chunk's payload."""
        return await asyncio.to_thread(self._queue.get)

    def close(self) -> None:
        self._closed.set()
        self._conn.close()


async def run_import(
    conn: asyncpg.Connection,
    prep: Prepared,
    *,
    on_conflict: OnConflict = "skip",
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Callable[[Progress], None] | None = None,
) -> Summary:
    """Import the prepared file into tracks; one transaction per chunk. Raises
    ImportInputError when the file turns out unreadable part-way (the chunks
    committed before stay: importing again skips them)."""
    t0 = time.perf_counter()
    mapping = prep.mapping
    spec = worker.Spec(
        path=str(prep.path),
        format=prep.format,
        table=prep.table,
        columns=tuple(mapping.fields.values()),
        fields=tuple(mapping.fields),
        limits=await column_limits(conn),
        rejects=str(prep.rejects_path),
        chunk_rows=chunk_rows,
    )
    loader = Loader(list(mapping.fields), on_conflict)
    summary = Summary(
        file=str(prep.path),
        format=prep.format,
        on_conflict=on_conflict,
        mapping=dict(mapping.fields),
        ignored_columns=list(mapping.ignored),
    )
    prep.close()  # the reader process opens the file itself
    proc, receiving = worker.start(spec)
    inbox = _Inbox(receiving, depth=READ_AHEAD)
    finished = False
    try:
        while True:
            msg, payload = await inbox.get()
            if msg is None:
                code = await asyncio.to_thread(proc.wait)
                raise RuntimeError(
                    f"the import's reader process ended without a word (exit code {code})"
                )
            if isinstance(msg, worker.Failed):
                if msg.unreadable:
                    raise ImportInputError(
                        f"{prep.path}: unreadable at {msg.message}; the chunks committed"
                        " before it are imported (importing again skips them)"
                    )
                raise RuntimeError(f"the import's reader process failed:\n{msg.message}")
            if isinstance(msg, worker.Done):
                counts = msg.counts
                summary.rejects_file = msg.rejects_file
                finished = True
                break
            assert isinstance(msg, worker.Chunk) and payload is not None
            res = await loader.load(conn, payload, msg.rows, msg.by_genius)
            del payload
            summary.inserted += res.inserted
            summary.updated += res.updated
            summary.skipped_existing += res.skipped_existing
            if on_progress is not None:
                c = msg.counts
                on_progress(
                    Progress(
                        c.read,
                        c.rejected,
                        summary.inserted,
                        c.position,
                        c.total,
                        time.perf_counter() - t0,
                    )
                )
    finally:
        if not finished:  # an error or Ctrl-C here: the reader has nothing left to do
            proc.kill()
        inbox.close()
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
    summary.read = counts.read
    summary.duplicates_in_file = counts.duplicates
    summary.rejected = counts.rejected
    summary.rejected_by_reason = dict(sorted(counts.rejected_by_reason.items()))
    summary.seconds = round(time.perf_counter() - t0, 3)
    summary.rows_per_s = round(summary.read / summary.seconds, 1) if summary.seconds else 0.0
    return summary
