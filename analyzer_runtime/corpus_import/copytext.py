"""Rows as PostgreSQL COPY text format, the staging table's columns in order.

The reader process encodes each chunk into one bytes payload, so the process that
talks to Postgres only streams it (no per-row Python work there). Text format:
tab-separated, `\\N` for NULL, backslash, tab, newline and carriage return escaped
(so a line holding only `\\.` in the data is never the end-of-data marker). Values
never hold NUL or lone surrogates: validation rejects those rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from analyzer_runtime.corpus_import.values import Row

NULL = "\\N"


def text(v: str | None) -> str:
    if v is None:
        return NULL
    if "\\" in v:
        v = v.replace("\\", "\\\\")
    if "\t" in v:
        v = v.replace("\t", "\\t")
    if "\n" in v:
        v = v.replace("\n", "\\n")
    if "\r" in v:
        v = v.replace("\r", "\\r")
    return v


def _num(v: float | None) -> str:
    return NULL if v is None else repr(v)


def _bool(v: bool | None) -> str:
    return NULL if v is None else ("t" if v else "f")


def _when(v: date | datetime | None) -> str:
    return NULL if v is None else v.isoformat()


def line(ord_: int, r: Row) -> str:
    """One staging row (loader.STAGE_COLUMNS) as a COPY text line."""
    return (
        "\t".join(
            (
                str(ord_),
                _num(r.genius_id),
                text(r.title),
                text(r.artist),
                text(r.lyrics),
                text(r.url),
                _num(r.word_count),
                text(r.genre),
                _when(r.release_date),
                text(r.album),
                text(r.language),
                _bool(r.explicit),
                text(r.song_art_url),
                _num(r.popularity_score),
                _num(r.lyrics_quality_score),
                _when(r.scraped_date),
                text(r.spotify_data),
                text(r.artist_key),
                text(r.title_key),
            )
        )
        + "\n"
    )


def payload(rows: Iterable[tuple[int, Row]]) -> bytes:
    return "".join([line(o, r) for o, r in rows]).encode()
