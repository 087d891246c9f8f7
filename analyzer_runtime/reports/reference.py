"""A reference label set for `report llm --reference FILE`: CSV (with a header) or
JSON Lines, one track per row, named by `track_id` or by `artist` and `title`, with
its `sentiment` (positive, negative, neutral, mixed) and optionally `themes` and
`quality` (1-10). In CSV, themes are separated by `;` or `|` (or a JSON list).

Rows that cannot be read are refused with their line number (ReportError): a
reference set with a typo must not silently shrink."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from analyzer_runtime.reports import ReportError
from analyzer_runtime.reports.label_quality import SENTIMENTS, ReferenceRow

MAX_BYTES = 64 * 1024 * 1024


def load(path: Path) -> list[ReferenceRow]:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ReportError(f"{path}: larger than {MAX_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ReportError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not UTF-8 text") from None
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson") or text.lstrip().startswith("{")
    rows = _jsonl(text, path) if jsonl else _csv(text, path)
    if not rows:
        raise ReportError(f"{path}: no reference rows")
    return rows


def _jsonl(text: str, path: Path) -> list[ReferenceRow]:
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise ReportError(f"{path}:{no}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ReportError(f"{path}:{no}: not a JSON object")
        out.append(_row(doc, no, path))
    return out


def _csv(text: str, path: Path) -> list[ReferenceRow]:
    reader = csv.DictReader(io.StringIO(text))
    fields = {f.strip().lower() for f in reader.fieldnames or []}
    if "sentiment" not in fields and "themes" not in fields and "quality" not in fields:
        raise ReportError(
            f"{path}: a CSV header with track_id (or artist,title) and sentiment[,themes,quality]"
        )
    out = []
    for rec in reader:
        doc = {(k or "").strip().lower(): v for k, v in rec.items()}
        out.append(_row(doc, reader.line_num, path))
    return out


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _themes(v: Any, where: str) -> list[str] | None:
    if _blank(v):
        return None
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            try:
                v = json.loads(s)
            except ValueError:
                raise ReportError(f"{where}: themes is not a JSON list") from None
        else:
            v = [t for part in s.replace("|", ";").split(";") if (t := part.strip())]
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        raise ReportError(f"{where}: themes must be a list of strings")
    # As the answer schema stores them: trimmed, lower case.
    return [t.strip().lower() for t in v if t.strip()]


def _row(doc: dict[str, Any], no: int, path: Path) -> ReferenceRow:
    where = f"{path}:{no}"
    track_id: int | None = None
    if not _blank(doc.get("track_id")):
        try:
            track_id = int(str(doc["track_id"]).strip())
        except ValueError:
            raise ReportError(f"{where}: track_id {doc['track_id']!r} is not a number") from None
    artist = None if _blank(doc.get("artist")) else str(doc["artist"]).strip()
    title = None if _blank(doc.get("title")) else str(doc["title"]).strip()
    if track_id is None and (artist is None or title is None):
        raise ReportError(f"{where}: name the track by track_id, or by artist and title")
    sentiment = None
    if not _blank(doc.get("sentiment")):
        sentiment = str(doc["sentiment"]).strip().lower()
        if sentiment not in SENTIMENTS:
            raise ReportError(
                f"{where}: sentiment {doc['sentiment']!r} is not one of {', '.join(SENTIMENTS)}"
            )
    quality = None
    if not _blank(doc.get("quality")):
        try:
            quality = float(doc["quality"])
        except (TypeError, ValueError):
            raise ReportError(f"{where}: quality {doc['quality']!r} is not a number") from None
    return ReferenceRow(
        line=no,
        track_id=track_id,
        artist=artist,
        title=title,
        sentiment=sentiment,
        themes=_themes(doc.get("themes"), where),
        quality=quality,
    )
