"""The rejects file: one line per rejected record, with where it is and why.

CSV (`line,reason,field,detail`) unless the path ends in .jsonl/.ndjson (one JSON
object per line with the same keys). Created at the first rejected record only (a
clean import writes no file); `line` is the record's first physical line in a
CSV/JSONL file (the CSV header is line 1) or its 1-based row number in a
Parquet/SQLite file. `detail` shows the offending value, shortened, with control
characters escaped and an invalid UTF-8 byte as \\xNN.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import IO, Any

from analyzer_runtime.corpus_import.values import Reject

HEADER = ("line", "reason", "field", "detail")


def default_path(source: Path) -> Path:
    """Next to the input: lyrics.csv -> lyrics.csv.rejects.csv."""
    return source.with_name(source.name + ".rejects.csv")


class RejectsWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
        self.by_reason: Counter[str] = Counter()
        self._file: IO[str] | None = None
        self._csv: Any = None

    @property
    def count(self) -> int:
        return sum(self.by_reason.values())

    def write(self, line: int, reject: Reject) -> None:
        if self._file is None:
            self._file = open(self.path, "w", encoding="utf-8", newline="")
            if not self.jsonl:
                self._csv = csv.writer(self._file)
                self._csv.writerow(HEADER)
        self.by_reason[reject.reason] += 1
        if self.jsonl:
            rec = dict(zip(HEADER, (line, *reject), strict=True))
            self._file.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            self._csv.writerow((line, *reject))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def read_rejects(path: Path) -> list[dict[str, Any]]:
    """The records of a rejects file (either format), `line` as an int."""
    with open(path, encoding="utf-8", newline="") as f:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return [json.loads(x) for x in f if x.strip()]
        return [{**r, "line": int(r["line"])} for r in csv.DictReader(f)]
