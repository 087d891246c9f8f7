"""The three file formats, each written a batch at a time (nothing holds more than one
batch of rows): Parquet through pyarrow's ParquetWriter (one row group per batch,
typed columns), CSV through the csv module (a header; NULL is an empty field; lists
and JSON as JSON text), JSON lines (one object per row; JSON columns nested)."""

from __future__ import annotations

import csv
import datetime as dt
import enum
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from analyzer_runtime.export.columns import Column, Kind


class Format(enum.Enum):
    PARQUET = "parquet"
    CSV = "csv"
    JSONL = "jsonl"


SUFFIXES = {
    ".parquet": Format.PARQUET,
    ".pq": Format.PARQUET,
    ".csv": Format.CSV,
    ".jsonl": Format.JSONL,
    ".ndjson": Format.JSONL,
}


class FormatError(ValueError):
    """A format that is not one of ours, or a file name that does not tell which."""


def format_for(path: Path, given: str | None) -> Format:
    """--format when given, else the format of `path`'s extension."""
    if given is not None:
        try:
            return Format(given.lower())
        except ValueError:
            raise FormatError(
                f"--format {given!r}: one of {', '.join(f.value for f in Format)}"
            ) from None
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise FormatError(
            f"cannot tell the format from the file name {path.name!r}: name it"
            f" {', '.join(SUFFIXES)} or give --format parquet|csv|jsonl"
        )
    return fmt


class Writer(Protocol):
    def write(self, rows: Sequence[Sequence[Any]]) -> None: ...
    def close(self) -> None: ...


def open_writer(fmt: Format, path: Path, columns: list[Column]) -> Writer:
    if fmt is Format.PARQUET:
        return ParquetWriter(path, columns)
    if fmt is Format.CSV:
        return CsvWriter(path, columns)
    return JsonLinesWriter(path, columns)


def arrow_type(kind: Kind) -> Any:
    import pyarrow as pa

    return {
        Kind.INT: pa.int64(),
        Kind.FLOAT: pa.float64(),
        Kind.TEXT: pa.string(),
        Kind.BOOL: pa.bool_(),
        Kind.DATE: pa.date32(),
        Kind.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
        Kind.TIMESTAMP: pa.timestamp("us"),
        Kind.JSON: pa.string(),
        Kind.TEXT_LIST: pa.list_(pa.string()),
    }[kind]


class ParquetWriter:
    """One row group per batch, zstd-compressed; JSON columns are strings."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.schema = pa.schema([pa.field(c.name, arrow_type(c.kind)) for c in columns])
        self._writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        pa = self._pa
        arrays = [
            pa.array([r[i] for r in rows], type=field.type) for i, field in enumerate(self.schema)
        ]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self._writer.close()


def _text(kind: Kind, v: Any) -> str:
    """A value as CSV text: NULL is empty, lists are JSON arrays, JSON is as stored."""
    if v is None:
        return ""
    if kind is Kind.BOOL:
        return "true" if v else "false"
    if kind is Kind.TEXT_LIST:
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dt.date):  # datetime too
        return v.isoformat()
    if isinstance(v, float):
        return repr(v)  # round-trips exactly
    return str(v)


class CsvWriter:
    def __init__(self, path: Path, columns: list[Column]) -> None:
        self._kinds = [c.kind for c in columns]
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow([c.name for c in columns])

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        kinds = self._kinds
        self._csv.writerows([_text(k, v) for k, v in zip(kinds, r, strict=True)] for r in rows)

    def close(self) -> None:
        self._file.close()


def _json_value(v: Any) -> Any:
    if isinstance(v, dt.date):  # datetime too
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None  # NaN/Infinity are not JSON
    return v


class JsonLinesWriter:
    """JSON columns are spliced in as Postgres wrote them (jsonb's text is JSON): a
    nested value, never parsed and serialized again."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        self._keys = [json.dumps(c.name, ensure_ascii=False) + ": " for c in columns]
        self._raw = [c.kind is Kind.JSON for c in columns]
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="\n")

    def _line(self, row: Sequence[Any]) -> str:
        parts = []
        for key, raw, v in zip(self._keys, self._raw, row, strict=True):
            if v is None:
                text = "null"
            elif raw:
                text = v
            else:
                text = json.dumps(_json_value(v), ensure_ascii=False)
            parts.append(key + text)
        return "{" + ", ".join(parts) + "}\n"

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        self._file.writelines(self._line(r) for r in rows)

    def close(self) -> None:
        self._file.close()
