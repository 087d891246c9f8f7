"""What an export reads: the columns of `tracks` / `analysis_results` as they are in
this database (a column added by a later migration or by `db adopt` is exported too),
each with the SQL that selects it and the type it has in the file.

Types are decided here, once, from the Postgres type: integers as int64, real /
double / numeric as float64, dates as dates, timestamps as timestamps (UTC for
timestamptz), json/jsonb as JSON text, text[] as a list of strings. Vector columns
(pgvector: the legacy `lyrics_embedding` / `audio_embedding`) and bytea are left out:
an export is labels and metadata, not 384 floats per row. `analysis_results.themes`
(jsonb) is a list of strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import asyncpg


class Kind(enum.Enum):
    INT = "int64"
    FLOAT = "float64"
    TEXT = "string"
    BOOL = "bool"
    DATE = "date"
    TIMESTAMPTZ = "timestamp[us, UTC]"
    TIMESTAMP = "timestamp[us]"
    JSON = "json"  # JSON text (a nested value in JSON lines)
    TEXT_LIST = "list<string>"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    select: str  # the SQL expression, aliased to `name` in the query


# Postgres type name (pg_type.typname) -> kind and the cast that gives Python that kind.
_TYPES: dict[str, tuple[Kind, str]] = {
    "int2": (Kind.INT, ""),
    "int4": (Kind.INT, ""),
    "int8": (Kind.INT, ""),
    "oid": (Kind.INT, "::int8"),
    "float4": (Kind.FLOAT, "::float8"),
    "float8": (Kind.FLOAT, ""),
    "numeric": (Kind.FLOAT, "::float8"),  # asyncpg gives Decimal otherwise
    "text": (Kind.TEXT, ""),
    "varchar": (Kind.TEXT, ""),
    "bpchar": (Kind.TEXT, ""),
    "name": (Kind.TEXT, "::text"),
    "citext": (Kind.TEXT, "::text"),
    "uuid": (Kind.TEXT, "::text"),
    "bool": (Kind.BOOL, ""),
    "date": (Kind.DATE, ""),
    "timestamptz": (Kind.TIMESTAMPTZ, ""),
    "timestamp": (Kind.TIMESTAMP, ""),
    "json": (Kind.JSON, "::text"),
    "jsonb": (Kind.JSON, "::text"),
    "_text": (Kind.TEXT_LIST, ""),
    "_varchar": (Kind.TEXT_LIST, "::text[]"),
}
# Left out of every export (see the module docstring).
SKIPPED_TYPES = frozenset({"vector", "halfvec", "sparsevec", "bytea"})

# analysis_results.themes is jsonb: a JSON array of strings (adopt turns the legacy TEXT
# into one). Anything else that is not NULL becomes a one-element list of its text.
THEMES_SQL = """CASE WHEN r.themes IS NULL OR jsonb_typeof(r.themes) = 'null' THEN NULL
     WHEN jsonb_typeof(r.themes) = 'array'
          THEN ARRAY(SELECT jsonb_array_elements_text(r.themes))
     ELSE ARRAY[r.themes #>> '{}'] END"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def table_columns(
    conn: asyncpg.Connection, table: str, alias: str
) -> tuple[list[Column], list[str]]:
    """(the exported columns of `table` in their order, the names left out)."""
    rows = await conn.fetch(
        """SELECT a.attname, t.typname, t.typcategory
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""",
        table,
    )
    if not rows:
        raise MissingSchema(table)
    out: list[Column] = []
    skipped: list[str] = []
    for r in rows:
        name, typ = r["attname"], r["typname"]
        ref = f"{alias}.{_quote(name)}"
        if typ in SKIPPED_TYPES:
            skipped.append(name)
        elif typ in _TYPES:
            kind, cast = _TYPES[typ]
            out.append(Column(name, kind, ref + cast))
        elif r["typcategory"] == "A":  # another array: its JSON form
            out.append(Column(name, Kind.JSON, f"to_jsonb({ref})::text"))
        else:  # interval, an enum, a domain ...: its text form
            out.append(Column(name, Kind.TEXT, f"{ref}::text"))
    return out, skipped


class MissingSchema(LookupError):
    """The table is not there: the database has no rap-analyzer schema yet."""

    def __init__(self, table: str) -> None:
        super().__init__(
            f"this database has no {table} table: apply the schema first"
            " (rap-analyzer db migrate, or db adopt for the original platform's database)"
        )


async def result_columns(conn: asyncpg.Connection) -> tuple[list[Column], list[str]]:
    """analysis_results' columns, with the track's title and artist after track_id and
    themes as a list of strings."""
    cols, skipped = await table_columns(conn, "analysis_results", "r")
    out: list[Column] = []
    for c in cols:
        if c.name in ("title", "artist"):  # the track's, joined in below, win
            skipped.append(c.name)
            continue
        out.append(Column(c.name, Kind.TEXT_LIST, THEMES_SQL) if c.name == "themes" else c)
        if c.name == "track_id":
            out += [Column("title", Kind.TEXT, "t.title"), Column("artist", Kind.TEXT, "t.artist")]
    return out, skipped


def select_list(columns: list[Column]) -> str:
    return ",\n       ".join(f"{c.select} AS {_quote(c.name)}" for c in columns)
