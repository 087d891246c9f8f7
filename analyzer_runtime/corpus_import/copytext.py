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
    (gid, title, artist, lyrics, url, words, genre, released, album, lang, explicit, art,
     popularity, quality, scraped, spotify, artist_key, title_key) = r  # fmt: skip
    return (
        f"{ord_}\t{NULL if gid is None else gid}\t{text(title)}\t{text(artist)}"
        f"\t{text(lyrics)}\t{text(url)}\t{NULL if words is None else words}\t{text(genre)}"
        f"\t{_when(released)}\t{text(album)}\t{text(lang)}\t{_bool(explicit)}\t{text(art)}"
        f"\t{_num(popularity)}\t{_num(quality)}\t{_when(scraped)}\t{text(spotify)}"
        f"\t{text(artist_key)}\t{text(title_key)}\n"
    )


def payload(rows: Iterable[tuple[int, Row]]) -> bytes:
    return b"".join([line(o, r).encode() for o, r in rows])
