"""From a source record's raw values to a track row, or the reason it is rejected.

Pure: no I/O. Readers hand over str (invalid UTF-8 bytes decoded with
`surrogateescape`, so a bad byte is a lone surrogate here and only its row is
rejected), bytes, numbers, dates, lists and dicts; this module checks and converts
them field by field (fields.FIELDS order, the first problem is the reason).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from analyzer_runtime.corpus_import.fields import BY_NAME, EXTRAS, FIELDS, IMPORT_KEY, Field
from analyzer_runtime.corpus_import.words import count_words

# Reasons, as written in the rejects file.
MISSING_TITLE = "missing_title"
MISSING_ARTIST = "missing_artist"
INVALID_UTF8 = "invalid_utf8"
NUL_CHARACTER = "nul_character"
FIELD_TOO_LONG = "field_too_long"
INVALID_DATE = "invalid_date"
INVALID_NUMBER = "invalid_number"
INVALID_VALUE = "invalid_value"
INVALID_JSON = "invalid_json"
MALFORMED_RECORD = "malformed_record"

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_INT = re.compile(r"[+-]?\d+(?:\.0*)?")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")
_YEAR = re.compile(r"(\d{4})(?:\.0*)?")
_YEAR_MONTH = re.compile(r"(\d{4})[-/](\d{1,2})")
_YMD = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ].*)?")
_WS_RUN = re.compile(r"[ \t\n\r\f\v]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TEXT_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%B %Y", "%b %Y")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class Reject(NamedTuple):
    reason: str
    field: str = ""
    detail: str = ""


class _Bad(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason, self.detail = reason, detail


def preview(value: Any, limit: int = 60) -> str:
    """A short, printable, valid-UTF-8 rendering of a value for the rejects file: control
    characters escaped, an invalid UTF-8 byte shown as \\xNN."""
    text = value if isinstance(value, str) else repr(value)
    cut = text[:limit]

    def esc(m: re.Match[str]) -> str:
        ch = ord(m.group())
        return f"\\x{ch - 0xDC00:02x}" if 0xDC80 <= ch <= 0xDCFF else f"\\u{ch:04x}"

    shown = _UNPRINTABLE.sub(esc, cut)
    return shown + ("..." if len(text) > limit else "")


def name_key(text: str) -> str:
    """The (artist, title) natural key's normal form: whitespace runs collapsed to one
    space, trimmed, ASCII letters lower-cased. Exactly what the SQL function
    track_name_key() computes (migration 0013), so both sides agree byte for byte."""
    if (
        "  " in text
        or "\t" in text
        or "\n" in text
        or "\r" in text
        or "\f" in text
        or "\v" in text
        or text.startswith(" ")
        or text.endswith(" ")
    ):  # cheaper checks than the regex, for the usual name with single spaces
        text = _WS_RUN.sub(" ", text).strip(" ")
    # str.lower() lowers ASCII letters only when there is nothing but ASCII
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def name_hash(artist_key: str, title_key: str) -> int:
    """64-bit digest of a name key, for remembering which keys a file already had."""
    digest = hashlib.blake2b(
        f"{artist_key}\x00{title_key}".encode(), digest_size=8
    ).digest()  # keys never hold NUL or surrogates: those rows are rejected
    return int.from_bytes(digest, "little", signed=True)


# -- per-kind converters: raise _Bad, return the converted value (None: empty) --------


def _as_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "surrogateescape")
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad(INVALID_VALUE, f"expected text, got {type(v).__name__}")
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            return str(int(v))
    return str(v)


def _short_token(v: Any) -> str | None:
    """A number's, date's or flag's text: checked, stripped; None when empty."""
    s = _as_text(v)
    if s is None:
        return None
    _check_text(s, 100)
    return s.strip() or None


def _check_text(s: str, limit: int | None) -> None:
    if not s.isascii():  # isascii and encode are C loops; the regex only finds the spot
        try:
            s.encode()
        except UnicodeEncodeError:
            m = _SURROGATE.search(s)
            at = m.start() if m is not None else 0
            raise _Bad(INVALID_UTF8, preview(s[max(0, at - 20) :])) from None
    if "\x00" in s:
        raise _Bad(NUL_CHARACTER, preview(s[max(0, s.index("\x00") - 20) :]))
    if limit is not None and len(s) > limit:
        raise _Bad(FIELD_TOO_LONG, f"{len(s)} characters, the limit is {limit}")


def _text(v: Any, f: Field) -> str | None:
    if type(v) is str and v.isascii():  # the common case, inline: no surrogates here
        if "\x00" in v:
            raise _Bad(NUL_CHARACTER, preview(v[max(0, v.index("\x00") - 20) :]))
        if f.max_chars is not None and len(v) > f.max_chars:
            raise _Bad(FIELD_TOO_LONG, f"{len(v)} characters, the limit is {f.max_chars}")
        return v.strip() or None
    s = _as_text(v)
    if s is None:
        return None
    _check_text(s, f.max_chars)
    s = s.strip()
    return s or None


def _int(v: Any, f: Field) -> int | None:
    if type(v) is str and v.isascii() and v.isdigit():  # the common case
        n = int(v)
        if (f.min_value is None or n >= f.min_value) and (f.max_value is None or n <= f.max_value):
            return n
    if v is None:
        return None
    if isinstance(v, bool):
        raise _Bad(INVALID_NUMBER, preview(v))
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if not v.is_integer():
            raise _Bad(INVALID_NUMBER, preview(v))
        n = int(v)
    elif isinstance(v, int):
        n = v
    else:
        s = _short_token(v)
        if s is None:
            return None
        if f.name == "views" and _THOUSANDS.fullmatch(s):
            s = s.replace(",", "")
        if not _INT.fullmatch(s):
            raise _Bad(INVALID_NUMBER, preview(s))
        n = int(s.split(".")[0])
    if (f.min_value is not None and n < f.min_value) or (
        f.max_value is not None and n > f.max_value
    ):
        raise _Bad(INVALID_NUMBER, f"{n} is out of range [{f.min_value}, {f.max_value}]")
    return n


def _float(v: Any, f: Field) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise _Bad(INVALID_NUMBER, preview(v))
    if isinstance(v, int | float):
        x = float(v)
    else:
        s = _short_token(v)
        if s is None:
            return None
        try:
            x = float(s)
        except ValueError:
            raise _Bad(INVALID_NUMBER, preview(s)) from None
    if math.isnan(x):
        return None
    if math.isinf(x):
        raise _Bad(INVALID_NUMBER, preview(v))
    return x


def parse_date(v: Any) -> date | None:
    """A release date: a full date, a year (-> January 1st), a year and month (-> the
    1st), `Month D, YYYY` as Genius shows it; a datetime's date. Raises ValueError."""
    if type(v) is str and len(v) == 10 and v[4] == "-":  # the common case, in C
        try:
            return date.fromisoformat(v)
        except ValueError:
            pass
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, bool):
        raise ValueError(f"not a date: {v!r}")
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if not v.is_integer():
            raise ValueError(f"not a year: {v!r}")
        v = int(v)
    if isinstance(v, int):
        if not 1 <= v <= 9999:
            raise ValueError(f"year out of range: {v}")
        return date(v, 1, 1)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "surrogateescape")
    if not isinstance(v, str):
        raise ValueError(f"not a date: {type(v).__name__}")
    s = v.strip()
    if not s:
        return None
    if len(s) == 10 and s[4] == "-":  # the common case, in C
        with contextlib.suppress(ValueError):
            return date.fromisoformat(s)
    if m := _YEAR.fullmatch(s):
        year = int(m.group(1))
        if year == 0:
            raise ValueError(f"year out of range: {s}")
        return date(year, 1, 1)
    if m := _YMD.fullmatch(s):
        y, mo, d = (int(x) for x in m.groups())
        if len(s) > 10:  # a timestamp: all of it must parse, not only its date
            datetime.fromisoformat(s.replace("Z", "+00:00"))
        # 1999-00-00 and 1999-05-00: a year, a month, as some catalogues write them
        if mo == 0 and d == 0:
            return date(y, 1, 1)
        if d == 0:
            return date(y, mo, 1)
        return date(y, mo, d)  # ValueError for month 0 or 13, day 45
    if m := _YEAR_MONTH.fullmatch(s):
        y, mo = (int(x) for x in m.groups())
        return date(y, mo or 1, 1)
    for fmt in _TEXT_DATE_FORMATS:
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not a date: {s!r}")


def _date(v: Any, f: Field) -> date | None:
    if isinstance(v, str | bytes):
        s = _as_text(v)
        if s is None:
            return None
        _check_text(s, 100)
    try:
        return parse_date(v)
    except ValueError:
        raise _Bad(INVALID_DATE, preview(v)) from None


def _timestamp(v: Any, f: Field) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        ts = v
    elif isinstance(v, date):
        ts = datetime(v.year, v.month, v.day)
    else:
        s = _short_token(v)
        if s is None:
            return None
        try:
            ts = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise _Bad(INVALID_DATE, preview(s)) from None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # naive: UTC


def _bool(v: Any, f: Field) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v)):
        if v in (0, 1):
            return bool(v)
        raise _Bad(INVALID_VALUE, preview(v))
    s = _short_token(v)
    if s is None:
        return None
    s = s.lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise _Bad(INVALID_VALUE, f"not true/false: {preview(s)}")


def parse_features(v: Any) -> list[str]:
    """Featured artists: a list, a JSON array, the Genius dataset's `{"A","B"}` (a
    Postgres array literal) or comma-separated names. Raises ValueError."""
    if isinstance(v, list | tuple):
        items = list(v)
    else:
        s = v.strip()
        if s.startswith("["):
            items = json.loads(s)
            if not isinstance(items, list):
                raise ValueError("not a JSON array")
        elif s.startswith("{") and s.endswith("}"):
            items = _pg_array(s[1:-1])
        else:
            items = s.split(",")
    out = []
    for item in items:
        if item is None:
            continue
        if not isinstance(item, str):
            raise ValueError(f"a feature is not text: {item!r}")
        item = item.strip()
        if item:
            out.append(item)
    return out


def _pg_array(body: str) -> list[str]:
    items: list[str] = []
    i, n = 0, len(body)
    while i < n:
        while i < n and body[i] == " ":
            i += 1
        if i < n and body[i] == '"':
            i += 1
            buf = []
            while i < n and body[i] != '"':
                if body[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(body[i])
                i += 1
            if i >= n:
                raise ValueError("unterminated quote")
            items.append("".join(buf))
            i += 1
            while i < n and body[i] == " ":
                i += 1
        else:
            j = body.find(",", i)
            j = n if j < 0 else j
            items.append(body[i:j])
            i = j
        if i < n:
            if body[i] != ",":
                raise ValueError("expected a comma")
            i += 1
    return items


def _features(v: Any, f: Field) -> list[str] | None:
    if v is None:
        return None
    if not isinstance(v, list | tuple):
        v = _as_text(v)
        if v is None:
            return None
        _check_text(v, f.max_chars)
    try:
        items = parse_features(v)
    except ValueError as exc:
        raise _Bad(INVALID_VALUE, f"features: {exc}") from None
    for item in items:
        _check_text(item, f.max_chars)
    if sum(map(len, items)) > (f.max_chars or 0):
        raise _Bad(FIELD_TOO_LONG, f"features longer than {f.max_chars} characters")
    return items or None


def _check_json_strings(obj: Any) -> None:
    if isinstance(obj, str):
        _check_text(obj, None)
    elif isinstance(obj, dict):
        for k, val in obj.items():
            _check_json_strings(k)
            _check_json_strings(val)
    elif isinstance(obj, list):
        for val in obj:
            _check_json_strings(val)


def _json(v: Any, f: Field) -> dict[str, Any] | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        s = _as_text(v)
        if s is None or not s.strip():
            return None
        _check_text(s, f.max_chars)
        try:
            v = json.loads(s)
        except ValueError:
            raise _Bad(INVALID_JSON, preview(s)) from None
        if v is None:
            return None
        if not isinstance(v, dict):
            raise _Bad(INVALID_JSON, "not a JSON object")
    _check_json_strings(v)  # jsonb has no NUL, and lone surrogates are not UTF-8
    return v


_REQUIRED = {"title": MISSING_TITLE, "artist": MISSING_ARTIST}
_CONVERTERS = {
    "text": _text,
    "int": _int,
    "float": _float,
    "date": _date,
    "timestamp": _timestamp,
    "bool": _bool,
    "features": _features,
    "json": _json,
}


# -- rows -------------------------------------------------------------------------------

# The staging table's columns after `ord` (loader.STAGE), in this order.
ROW_COLUMNS = (
    "genius_id", "title", "artist", "lyrics", "url", "word_count", "genre", "release_date",
    "album", "language", "explicit", "song_art_url", "popularity_score",
    "lyrics_quality_score", "scraped_date", "spotify_data", "artist_key", "title_key",
)  # fmt: skip


class Row(NamedTuple):
    genius_id: int | None
    title: str
    artist: str
    lyrics: str | None
    url: str | None
    word_count: int | None
    genre: str | None
    release_date: date | None
    album: str | None
    language: str | None
    explicit: bool | None
    song_art_url: str | None
    popularity_score: int | None
    lyrics_quality_score: float | None
    scraped_date: datetime | None
    spotify_data: str | None  # JSON text, as asyncpg's jsonb codec takes it
    artist_key: str
    title_key: str


_SLOT = {f.name: i for i, f in enumerate(FIELDS)}  # a field's place in Validator's list
(_TITLE, _ARTIST, _LYRICS, _DATE, _ALBUM, _URL, _GENIUS, _LANG, _GENRE, _VIEWS, _FEATURES,
 _EXPLICIT, _ART, _POPULARITY, _QUALITY, _SCRAPED, _SPOTIFY) = (
    _SLOT[n] for n in (
        "title", "artist", "lyrics", "release_date", "album", "url", "genius_id", "language",
        "genre", "views", "features", "explicit", "song_art_url", "popularity_score",
        "lyrics_quality_score", "scraped_date", "spotify_data",
    )
)  # fmt: skip


@dataclass(frozen=True)
class Validator:
    """Checks and converts the values of one file's mapped fields (in `fields` order)."""

    fields: tuple[Field, ...]
    # Per field: its slot in the row, its converter, the field, the reject if missing.
    _plan: tuple[tuple[int, Any, Field, str | None], ...] = dataclass_field(
        init=False, repr=False, compare=False
    )

    @classmethod
    def for_fields(cls, names: Sequence[str], limits: dict[str, int] | None = None) -> Validator:
        """`limits`: tighter per-field limits (the database's varchar(n) or integer
        columns), applied on top of fields.FIELDS."""
        out = []
        for name in names:
            f = BY_NAME[name]
            lim = (limits or {}).get(name)
            if lim is not None:
                if f.kind == "int":
                    f = replace(f, max_value=min(f.max_value or lim, lim))
                elif f.max_chars is None or lim < f.max_chars:
                    f = replace(f, max_chars=lim)
            out.append(f)
        return cls(tuple(out))

    def __post_init__(self) -> None:
        plan = tuple(
            (_SLOT[f.name], _CONVERTERS[f.kind], f, _REQUIRED.get(f.name)) for f in self.fields
        )
        object.__setattr__(self, "_plan", plan)

    def __call__(self, values: Sequence[Any]) -> Row | Reject:
        got: list[Any] = [None] * len(FIELDS)
        for (slot, convert, f, missing), raw in zip(self._plan, values, strict=True):
            if raw is not None:
                try:
                    got[slot] = convert(raw, f)
                except _Bad as bad:
                    return Reject(bad.reason, f.name, bad.detail)
            if missing is not None and got[slot] is None:
                return Reject(missing, f.name)
        title, artist, lyrics, data = got[_TITLE], got[_ARTIST], got[_LYRICS], got[_SPOTIFY]
        if got[_VIEWS] is not None or got[_FEATURES] is not None:
            extras = {k: got[_SLOT[k]] for k in EXTRAS if got[_SLOT[k]] is not None}
            data = {**(data or {}), IMPORT_KEY: extras}
        if title is None or artist is None:  # fields without a title or artist column
            return Reject(MISSING_TITLE if title is None else MISSING_ARTIST)
        return Row(
            got[_GENIUS],
            title,
            artist,
            lyrics,
            got[_URL],
            count_words(lyrics) if lyrics is not None else None,
            got[_GENRE],
            got[_DATE],
            got[_ALBUM],
            got[_LANG],
            got[_EXPLICIT],
            got[_ART],
            got[_POPULARITY],
            got[_QUALITY],
            got[_SCRAPED],
            json.dumps(data, ensure_ascii=False) if data is not None else None,
            name_key(artist),
            name_key(title),
        )
