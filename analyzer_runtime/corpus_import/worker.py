"""The reading side of an import, in a process of its own.

Reading, checking, dropping duplicates and encoding COPY text is all Python CPU; the
Postgres side (staging, merging, compressing lyrics into TOAST) is all the server's.
In one Python process the two would take turns on the GIL (and a thread streaming
COPY data waits for it at every socket write); here the reader process works on the
next chunks while the main process streams the current one to Postgres, so the two
proceed in parallel on two cores. The reader sends, per chunk, a `Chunk` header and
then the COPY payload as raw bytes; at the end a `Done`; or a `Failed` with the reason
when the file turns out unreadable part-way. It gets a few chunks ahead at most: the
main process takes up to pipeline.READ_AHEAD off the pipe, then a send blocks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from analyzer_runtime.corpus_import import copytext, readers
from analyzer_runtime.corpus_import.readers import UnreadableFile
from analyzer_runtime.corpus_import.rejects import RejectsWriter
from analyzer_runtime.corpus_import.seen import SeenKeys
from analyzer_runtime.corpus_import.values import Reject, Row, Validator, name_hash

# A chunk also ends at this many characters of lyrics: 5,000 songs at the 200,000
# character limit would otherwise be a gigabyte in memory.
CHUNK_CHARS = 16_000_000


@dataclass(frozen=True)
class Spec:
    """What the reader process needs (sent to it as JSON on its stdin)."""

    path: str
    format: str
    table: str
    columns: tuple[str, ...]  # the source columns, in `fields` order
    fields: tuple[str, ...]
    limits: dict[str, int]
    rejects: str
    chunk_rows: int


@dataclass
class Counts:
    read: int = 0
    duplicates: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    position: int = 0  # in the reader's unit (bytes or rows)
    total: int | None = None

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


@dataclass(frozen=True)
class Chunk:
    rows: int
    by_genius: int  # rows keyed by a Genius id (the others by artist and title)
    counts: Counts  # the file so far, up to and including this chunk


@dataclass(frozen=True)
class Done:
    counts: Counts
    rejects_file: str | None


@dataclass(frozen=True)
class Failed:
    message: str
    unreadable: bool  # the file (exit 2); otherwise a bug, with its traceback


class Chunker:
    """Records -> chunks of checked rows seen for the first time in this file."""

    def __init__(self, spec: Spec, reader: readers.Reader, rejects: RejectsWriter) -> None:
        self._records = reader.records(list(spec.columns))
        self._reader = reader
        self._validate = Validator.for_fields(spec.fields, spec.limits)
        self._rejects = rejects
        self._genius = SeenKeys()
        self._names = SeenKeys()
        self._chunk_rows = spec.chunk_rows
        self.counts = Counts(total=reader.total)

    def next_chunk(self) -> list[tuple[int, Row]]:
        rows: list[tuple[int, Row]] = []
        chars = 0
        counts = self.counts
        for line, values in self._records:
            counts.read += 1
            row = values if isinstance(values, Reject) else self._validate(values)
            if isinstance(row, Reject):
                self._rejects.write(line, row)
                continue
            key = name_hash(row.artist_key, row.title_key)
            if row.genius_id is not None:
                new = self._genius.add(row.genius_id)
                self._names.add(key)  # a later row without an id and this name: a duplicate
            else:
                new = self._names.add(key)
            if not new:
                counts.duplicates += 1
                continue
            rows.append((line, row))  # the line orders the rows: inserts follow the file
            chars += len(row.lyrics or "")
            if len(rows) >= self._chunk_rows or chars >= CHUNK_CHARS:
                break
        counts.rejected_by_reason = dict(self._rejects.by_reason)
        counts.position = self._reader.position()
        return rows


def produce(spec: Spec, send: Callable[[Chunk, bytes], None]) -> Done:
    """Read the whole file, calling `send` per chunk. Raises UnreadableFile."""
    reader = readers.open_reader(Path(spec.path), spec.format, table=spec.table)
    rejects = RejectsWriter(Path(spec.rejects))
    try:
        chunker = Chunker(spec, reader, rejects)
        while rows := chunker.next_chunk():
            by_genius = sum(1 for _, r in rows if r.genius_id is not None)
            send(Chunk(len(rows), by_genius, chunker.counts), copytext.payload(rows))
        return Done(chunker.counts, spec.rejects if rejects.count else None)
    finally:
        rejects.close()
        reader.close()


def serve(spec: Spec, conn: Connection) -> None:
    """Produce the file's chunks into `conn`, then a Done (or a Failed)."""

    def send(chunk: Chunk, payload: bytes) -> None:
        conn.send(chunk)
        conn.send_bytes(payload)

    try:
        conn.send(produce(spec, send))
    except UnreadableFile as exc:
        conn.send(Failed(str(exc), unreadable=True))
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C, or the main process is gone
        pass
    except Exception:
        conn.send(Failed(traceback.format_exc(), unreadable=False))
    finally:
        conn.close()


def start(spec: Spec) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start the reader process; returns it and the end of the pipe its messages come on.

    A plain subprocess (python -c _ENTRY FD), not multiprocessing: spawning with multiprocessing re-imports the caller's main
    module, which a script without an `if __name__ == "__main__"` guard would run
    again. The spec goes in on stdin as JSON."""
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, str(write_fd)],
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            env=env,
        )
    finally:
        os.close(write_fd)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(dataclasses.asdict(spec)).encode())
    proc.stdin.close()
    return proc, Connection(read_fd, writable=False)


# Not `-m` this module: its classes must pickle as this module's, not __main__'s.
_ENTRY = f"import sys; from {__name__} import _main; _main(sys.argv)"


def _main(argv: list[str]) -> None:
    raw = json.loads(sys.stdin.buffer.read())
    spec = Spec(**{**raw, "columns": tuple(raw["columns"]), "fields": tuple(raw["fields"])})
    serve(spec, Connection(int(argv[1]), readable=False))
