"""An import from start to end: read -> check -> drop duplicates -> chunks -> Postgres.

Reading and checking (CPU in this process) overlap with loading (CPU in the
Postgres server): the next chunk is prepared in a thread while the current one is
being merged. Memory stays bounded by two chunks plus ~8 bytes per distinct key
(seen.SeenKeys), whatever the file's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from analyzer_runtime.corpus_import import readers
from analyzer_runtime.corpus_import.loader import Loader, OnConflict, column_limits
from analyzer_runtime.corpus_import.mapping import Mapping, MappingError, resolve
from analyzer_runtime.corpus_import.readers import Reader, UnreadableFile
from analyzer_runtime.corpus_import.rejects import RejectsWriter, default_path
from analyzer_runtime.corpus_import.seen import SeenKeys
from analyzer_runtime.corpus_import.values import Reject, Row, Validator, name_hash

CHUNK_ROWS = 5_000
# A chunk also ends at this many characters of lyrics: 5,000 songs at the 200,000
# character limit would otherwise be a gigabyte in memory.
CHUNK_CHARS = 16_000_000


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
    if not os.access(rejects_path.parent if str(rejects_path.parent) else Path("."), os.W_OK):
        raise ImportInputError(
            f"cannot write the rejects file {rejects_path} (its directory is not writable);"
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
    return Prepared(path, reader, mapping, rejects_path)


class _Chunker:
    """Turns records into chunks of checked, first-seen rows (runs in a worker thread)."""

    def __init__(self, prep: Prepared, validator: Validator, rejects: RejectsWriter) -> None:
        self._records = prep.reader.records(list(prep.mapping.fields.values()))
        self._validate = validator
        self._rejects = rejects
        self._genius = SeenKeys()
        self._names = SeenKeys()
        self.read = 0
        self.duplicates = 0

    def next_chunk(self, max_rows: int) -> list[tuple[int, Row]]:
        rows: list[tuple[int, Row]] = []
        chars = 0
        for line, values in self._records:
            self.read += 1
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
                self.duplicates += 1
                continue
            rows.append((line, row))  # the line orders the rows: inserts follow the file
            chars += len(row.lyrics or "")
            if len(rows) >= max_rows or chars >= CHUNK_CHARS:
                break
        return rows


async def run_import(
    conn: asyncpg.Connection,
    prep: Prepared,
    *,
    on_conflict: OnConflict = "skip",
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Callable[[Progress], None] | None = None,
) -> Summary:
    """Import the prepared file into tracks; one transaction per chunk. Raises
    ImportInputError when the file turns out unreadable part-way (the chunks before
    are committed: importing again skips them)."""
    t0 = time.perf_counter()
    reader, mapping = prep.reader, prep.mapping
    validator = Validator.for_fields(list(mapping.fields), await column_limits(conn))
    loader = Loader(list(mapping.fields), on_conflict)
    rejects = RejectsWriter(prep.rejects_path)
    chunker = _Chunker(prep, validator, rejects)
    summary = Summary(
        file=str(prep.path),
        format=reader.format,
        on_conflict=on_conflict,
        mapping=dict(mapping.fields),
        ignored_columns=list(mapping.ignored),
    )

    def produce() -> tuple[list[tuple[int, Row]], int, int, int]:
        rows = chunker.next_chunk(chunk_rows)
        return rows, chunker.read, rejects.count, reader.position()

    pending = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        while True:
            try:
                rows, read, rejected, position = await pending
            except UnreadableFile as exc:
                raise ImportInputError(
                    f"{prep.path}: unreadable at {exc}; the chunks committed before it are"
                    " imported (importing again skips them)"
                ) from None
            if not rows:
                break
            pending = asyncio.ensure_future(asyncio.to_thread(produce))  # read ahead
            res = await loader.load(conn, rows)
            summary.inserted += res.inserted
            summary.updated += res.updated
            summary.skipped_existing += res.skipped_existing
            if on_progress is not None:
                on_progress(
                    Progress(
                        read,
                        rejected,
                        summary.inserted,
                        position,
                        reader.total,
                        time.perf_counter() - t0,
                    )
                )
    finally:
        if not pending.done():  # the reader thread must finish before the file closes
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
        rejects.close()
    summary.read = chunker.read
    summary.duplicates_in_file = chunker.duplicates
    summary.rejected = rejects.count
    summary.rejected_by_reason = dict(sorted(rejects.by_reason.items()))
    summary.rejects_file = str(rejects.path) if rejects.count else None
    summary.seconds = round(time.perf_counter() - t0, 3)
    summary.rows_per_s = round(summary.read / summary.seconds, 1) if summary.seconds else 0.0
    return summary
