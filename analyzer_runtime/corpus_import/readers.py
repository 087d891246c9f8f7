"""Streaming readers, one per format: a file is never read whole.

Every reader gives its column names, then `(line, values)` per record, where `line`
is the physical line the record starts on (CSV, JSONL; the header is line 1 of a
CSV) or the 1-based row number (Parquet, SQLite), and `values` are the wanted
columns' raw values in order, or a values.Reject for a record that cannot be read
at all (a CSV row with the wrong number of fields, a JSONL line that is not a JSON
object). Text is decoded with `surrogateescape`: an invalid UTF-8 byte becomes a
lone surrogate that validation rejects with that row only.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sqlite3
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from analyzer_runtime.corpus_import.values import (
    INVALID_JSON,
    MALFORMED_RECORD,
    Reject,
    preview,
)

FORMATS = ("csv", "tsv", "jsonl", "parquet", "sqlite")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".db": "sqlite",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
}
# csv's own limit is 128 KiB a field; lyrics fields are longer. Fields over this are
# rejected by the reader (the row only); validation rejects smaller over-long ones.
CSV_FIELD_LIMIT = 16 * 1024 * 1024
JSONL_SAMPLE_LINES = 1000  # column names: the keys of the first objects

Record = tuple[int, list[Any] | Reject]


class UnreadableFile(Exception):
    """The file cannot be read as the format says (at all, or from some point on)."""


class Reader(Protocol):
    format: str
    columns: list[str]
    unit: str

    @property
    def total(self) -> int | None:  # of `unit`s: bytes (csv/jsonl) or rows (parquet/sqlite)
        ...

    def records(self, wanted: Sequence[str]) -> Iterator[Record]: ...
    def position(self) -> int: ...
    def close(self) -> None: ...


def detect_format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
        fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
        return fmt if fmt in ("csv", "tsv", "jsonl") else None
    return _SUFFIXES.get(suffixes[-1]) if suffixes else None


def open_reader(path: Path, fmt: str, *, table: str = "tracks") -> Reader:
    """Open `path` as `fmt`; raises UnreadableFile (with the reason) if it cannot."""
    try:
        if fmt in ("csv", "tsv"):
            return CsvReader(path, delimiter="\t" if fmt == "tsv" else ",", fmt=fmt)
        if fmt == "jsonl":
            return JsonlReader(path)
        if fmt == "parquet":
            return ParquetReader(path)
        if fmt == "sqlite":
            return SqliteReader(path, table)
    except OSError as exc:
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from None
    raise UnreadableFile(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")


def _open_binary(path: Path) -> tuple[gzip.GzipFile | io.BufferedReader, io.BufferedReader]:
    """(stream to read, underlying file whose tell() is the progress in bytes)."""
    raw = open(path, "rb")
    if path.suffix.lower() == ".gz":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


class CsvReader:
    unit = "bytes"

    def __init__(self, path: Path, *, delimiter: str = ",", fmt: str = "csv") -> None:
        self.format = fmt
        self._stream, self._raw = _open_binary(path)
        self.total = path.stat().st_size
        self._text = io.TextIOWrapper(
            self._stream, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        csv.field_size_limit(CSV_FIELD_LIMIT)
        self._reader = csv.reader(self._text, delimiter=delimiter)
        try:
            header = next(self._reader, None)
        except (csv.Error, OSError, EOFError, gzip.BadGzipFile) as exc:
            self.close()
            raise UnreadableFile(f"{path}: cannot read the header line: {exc}") from None
        if not header:
            self.close()
            raise UnreadableFile(f"{path}: empty file (a CSV needs a header line)")
        if any(preview(h) != h for h in header):
            self.close()
            raise UnreadableFile(
                f"{path}: the header line has invalid UTF-8 or control characters:"
                f" {preview(','.join(header))}"
            )
        self.columns = [h.strip() for h in header]

    def records(self, wanted: Sequence[str]) -> Iterator[Record]:
        index = [self.columns.index(c) for c in wanted]
        width = len(self.columns)
        reader = self._reader
        last = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a field over CSV_FIELD_LIMIT
                yield last + 1, Reject(MALFORMED_RECORD, "", str(exc))
                last = reader.line_num
                continue
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise UnreadableFile(f"line {last + 1}: {exc}") from None
            line, last = last + 1, reader.line_num
            if not row:
                continue  # a blank line is no record
            if len(row) != width:
                yield (
                    line,
                    Reject(MALFORMED_RECORD, "", f"{len(row)} fields, the header has {width}"),
                )
                continue
            yield line, [row[i] or None for i in index]  # CSV has no NULL: empty is none

    def position(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._stream.close()
        self._raw.close()


class JsonlReader:
    format = "jsonl"
    unit = "bytes"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stream, self._raw = _open_binary(path)
        self.total = path.stat().st_size
        try:
            self.columns = self._sample_columns()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            self.close()
            raise UnreadableFile(f"{path}: {exc}") from None
        self._stream.seek(0)

    def _sample_columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for raw in islice(self._stream, JSONL_SAMPLE_LINES):
            text = raw.decode("utf-8", "surrogateescape").lstrip("\ufeff").strip()
            if not text:
                continue
            if text.startswith("[") and not seen:
                raise UnreadableFile(
                    f"{self._path}: a JSON array, not JSON Lines (one object per line);"
                    " convert it with: jq -c '.[]'"
                )
            try:
                obj = json.loads(text)
            except ValueError:
                continue
            if isinstance(obj, dict):
                seen.update(dict.fromkeys(obj))
        return list(seen)

    def records(self, wanted: Sequence[str]) -> Iterator[Record]:
        line = 0
        stream = iter(self._stream)
        while True:
            try:
                raw = next(stream)
            except StopIteration:
                return
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise UnreadableFile(f"line {line + 1}: {exc}") from None
            line += 1
            text = raw.decode("utf-8", "surrogateescape")
            if line == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                yield line, Reject(INVALID_JSON, "", f"{exc}: {preview(text)}")
                continue
            if not isinstance(obj, dict):
                yield line, Reject(MALFORMED_RECORD, "", "not a JSON object")
                continue
            yield line, [obj.get(c) for c in wanted]

    def position(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._stream.close()
        self._raw.close()


class ParquetReader:
    format = "parquet"
    unit = "rows"
    BATCH_ROWS = 2048

    def __init__(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, ValueError) as exc:
            raise UnreadableFile(f"{path}: not a readable Parquet file: {exc}") from None
        self.columns = list(self._file.schema_arrow.names)
        self.total = self._file.metadata.num_rows
        self._done = 0

    def _values(self, col: Any) -> list[Any]:
        pa = self._pa
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            # As bytes, decoded here: an invalid UTF-8 value rejects its row only.
            col = col.cast(pa.large_binary())
            return [
                None if b is None else b.decode("utf-8", "surrogateescape") for b in col.to_pylist()
            ]
        return col.to_pylist()

    def records(self, wanted: Sequence[str]) -> Iterator[Record]:
        pa = self._pa
        batches = self._file.iter_batches(batch_size=self.BATCH_ROWS, columns=list(wanted))
        while True:
            try:
                batch = next(batches)
                cols = [self._values(batch.column(i)) for i in range(batch.num_columns)]
            except StopIteration:
                return
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise UnreadableFile(f"row {self._done + 1}: {exc}") from None
            for values in zip(*cols, strict=True):
                self._done += 1
                yield self._done, list(values)

    def position(self) -> int:
        return self._done

    def close(self) -> None:
        self._file.close()


class SqliteReader:
    """The original platform's `data/rap_lyrics.db` (or any SQLite table)."""

    format = "sqlite"
    unit = "rows"

    def __init__(self, path: Path, table: str) -> None:
        if not path.is_file():
            raise UnreadableFile(f"{path}: no such file")
        # Read from the import's worker threads, one at a time (never concurrently).
        self._conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        self._conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        self._table = table
        self._done = 0
        try:
            tables = [
                r[0]
                for r in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
                )
            ]
            if table not in tables:
                raise UnreadableFile(
                    f"{path}: no table {table!r} (tables: {', '.join(tables) or 'none'});"
                    " name one with --table"
                )
            self.columns = [r[1] for r in self._conn.execute(f"PRAGMA table_info({_q(table)})")]
            self.total = self._conn.execute(f"SELECT count(*) FROM {_q(table)}").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise UnreadableFile(f"{path}: not a readable SQLite database: {exc}") from None
        except UnreadableFile:
            self._conn.close()
            raise

    def records(self, wanted: Sequence[str]) -> Iterator[Record]:
        cols = ", ".join(_q(c) for c in wanted)
        try:
            cur = self._conn.execute(f"SELECT {cols} FROM {_q(self._table)}")
            while rows := cur.fetchmany(1000):
                for row in rows:
                    self._done += 1
                    yield self._done, list(row)
        except sqlite3.DatabaseError as exc:
            raise UnreadableFile(f"row {self._done + 1}: {exc}") from None

    def position(self) -> int:
        return self._done

    def close(self) -> None:
        self._conn.close()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
