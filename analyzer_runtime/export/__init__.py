"""`rap-analyzer export`: labels and tracks out of Postgres into Parquet, CSV or JSON
lines (issue 21).

Streaming: the rows come through a server-side cursor inside a read-only transaction
(one consistent snapshot), `chunk_size` rows per fetch, and each chunk is written
before the next is fetched, so memory holds one chunk whatever the table's size.
The file is written under a temporary name next to the target and renamed when
complete: an interrupted or failed export never leaves a truncated file under the
name asked for.

- `export_results`: the results of one analyzer_type (every model_version, or one),
  with the track's title and artist, ordered by model_version then track id (the
  order of the (analyzer_type, model_version, track_id) index: no sort).
- `export_tracks`: the tracks in id order, without embedding vectors.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from analyzer_runtime.export.columns import (
    Column,
    MissingSchema,
    result_columns,
    select_list,
    table_columns,
)
from analyzer_runtime.export.writers import Format, FormatError, format_for, open_writer

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ExportError",
    "ExportSummary",
    "Format",
    "FormatError",
    "MissingSchema",
    "export_results",
    "export_tracks",
    "format_for",
]

DEFAULT_CHUNK_SIZE = 5000


class ExportError(ValueError):
    """Nothing to export as asked (an analyzer or version with no results), or the file
    cannot be written: one line naming what there is, or the file and why."""


def _file_error(path: Path, exc: OSError) -> ExportError:
    # Kept apart from the database's errors (an OSError too, exit 3): a full disk or a
    # folder in the way is the user's input (exit 2).
    return ExportError(f"{path}: {exc.strerror or exc}")


@dataclass(slots=True)
class ExportSummary:
    what: str  # "results" or "tracks"
    file: str
    format: str
    rows: int
    seconds: float
    columns: list[str]
    left_out: list[str] = field(default_factory=list)  # columns not exported
    analyzer: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        what = self.what
        if self.analyzer is not None:
            which = f"version {self.version}" if self.version else "all versions"
            what = f"{self.analyzer} results ({which})"
        return (
            f"exported {self.rows:,} {what} to {self.file} ({self.format},"
            f" {len(self.columns)} columns) in {self.seconds:.1f}s"
        )


def _on_file(path: Path, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except OSError as exc:
        raise _file_error(path, exc) from None


async def _export(
    conn: asyncpg.Connection,
    sql: str,
    args: list[Any],
    columns: list[Column],
    fmt: Format,
    path: Path,
    chunk_size: int,
) -> int:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    rows = 0
    # Written under a temporary name, renamed over `path` when complete.
    tmp = path.with_name(f".{path.name}.partial")
    try:
        writer = _on_file(path, open_writer, fmt, tmp, columns)
        try:
            async with conn.transaction(readonly=True):
                cursor = await conn.cursor(sql, *args)
                while chunk := await cursor.fetch(chunk_size):
                    _on_file(path, writer.write, chunk)
                    rows += len(chunk)
        finally:
            _on_file(path, writer.close)
        _on_file(path, os.replace, tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()  # gone after the rename; a failed export's partial file
    return rows


async def _analyzer_names(conn: asyncpg.Connection) -> list[str]:
    # Only on the error path: one pass over the (analyzer_type, ...) index.
    rows = await conn.fetch("SELECT DISTINCT analyzer_type FROM analysis_results ORDER BY 1")
    return [r[0] for r in rows]


async def _check_results_exist(
    conn: asyncpg.Connection, analyzer: str, version: str | None
) -> None:
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM analysis_results WHERE analyzer_type = $1)", analyzer
    ):
        if version is None or await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM analysis_results
                               WHERE analyzer_type = $1 AND model_version = $2)""",
            analyzer,
            version,
        ):
            return
        versions = await conn.fetch(
            "SELECT DISTINCT model_version FROM analysis_results WHERE analyzer_type = $1"
            " ORDER BY 1",
            analyzer,
        )
        raise ExportError(
            f"analyzer {analyzer!r} has no results of version {version!r}; its versions:"
            f" {', '.join(r[0] for r in versions)} (or leave out --version for all)"
        )
    names = await _analyzer_names(conn)
    there = ", ".join(names) if names else "none: this database has no results yet"
    raise ExportError(f"no results of analyzer {analyzer!r} in this database; analyzers: {there}")


async def export_results(
    conn: asyncpg.Connection,
    analyzer: str,
    path: Path,
    fmt: Format,
    *,
    version: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ExportSummary:
    """Write the results of `analyzer` (all versions, or `version`) to `path`."""
    t0 = time.perf_counter()
    columns, left_out = await result_columns(conn)
    await table_columns(conn, "tracks", "t")  # MissingSchema before any file is opened
    await _check_results_exist(conn, analyzer, version)
    where = "r.analyzer_type = $1"
    args: list[Any] = [analyzer]
    if version is not None:
        where += " AND r.model_version = $2"
        args.append(version)
    sql = f"""SELECT {select_list(columns)}
                FROM analysis_results r LEFT JOIN tracks t ON t.id = r.track_id
               WHERE {where}
               ORDER BY r.analyzer_type, r.model_version, r.track_id, r.id"""
    rows = await _export(conn, sql, args, columns, fmt, path, chunk_size)
    return ExportSummary(
        what="results",
        file=str(path),
        format=fmt.value,
        rows=rows,
        seconds=round(time.perf_counter() - t0, 3),
        columns=[c.name for c in columns],
        left_out=left_out,
        analyzer=analyzer,
        version=version,
    )


async def export_tracks(
    conn: asyncpg.Connection,
    path: Path,
    fmt: Format,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ExportSummary:
    """Write every track (id order, no embedding vectors) to `path`."""
    t0 = time.perf_counter()
    columns, left_out = await table_columns(conn, "tracks", "t")
    sql = f"SELECT {select_list(columns)} FROM tracks t ORDER BY t.id"
    rows = await _export(conn, sql, [], columns, fmt, path, chunk_size)
    return ExportSummary(
        what="tracks",
        file=str(path),
        format=fmt.value,
        rows=rows,
        seconds=round(time.perf_counter() - t0, 3),
        columns=[c.name for c in columns],
        left_out=left_out,
    )
