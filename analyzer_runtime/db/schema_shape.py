"""The shape of a table as Postgres describes it: columns, constraints, indexes.

`db adopt` compares a legacy table with the table the baseline migration creates. The
target is not written down a second time: the baseline SQL is run in a scratch schema
inside a transaction that is rolled back, and described the same way as the legacy one.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

SCRATCH = "rap_adopt_target"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): 'character varying(50)', 'numeric(5,4)', 'vector(384)'
    not_null: bool
    default: str | None


@dataclass(frozen=True)
class Constraint:
    name: str
    kind: str  # p, u, f, c (pg_constraint.contype)
    columns: tuple[str, ...]
    definition: str


@dataclass(frozen=True)
class Index:
    name: str
    method_and_columns: str  # 'btree (artist)': what follows USING in the definition


@dataclass(frozen=True)
class TableShape:
    name: str
    columns: dict[str, Column]
    constraints: dict[str, Constraint]
    indexes: dict[str, Index]


class _Rollback(Exception):
    pass


async def describe(conn: asyncpg.Connection, schema: str, table: str) -> TableShape | None:
    oid = await conn.fetchval(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
        schema,
        table,
    )
    if oid is None:
        return None
    cols = await conn.fetch(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid) AS def
           FROM pg_attribute a
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""",
        oid,
    )
    cons = await conn.fetch(
        """SELECT c.conname, c.contype::text AS kind, pg_get_constraintdef(c.oid) AS def,
                  ARRAY(SELECT a.attname FROM unnest(c.conkey) k
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k
                        ORDER BY a.attname) AS cols
           FROM pg_constraint c WHERE c.conrelid = $1 AND c.contype <> 'n'""",
        oid,
    )
    idx = await conn.fetch(
        """SELECT ic.relname, pg_get_indexdef(i.indexrelid) AS def
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
           WHERE i.indrelid = $1
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                             AND c.conrelid = $1)""",
        oid,
    )
    return TableShape(
        name=table,
        columns={
            r["attname"]: Column(r["attname"], r["type"], r["attnotnull"], r["def"]) for r in cols
        },
        constraints={
            r["conname"]: Constraint(r["conname"], r["kind"], tuple(r["cols"]), r["def"])
            for r in cons
        },
        indexes={r["relname"]: Index(r["relname"], r["def"].split(" USING ", 1)[1]) for r in idx},
    )


async def baseline_shapes(
    conn: asyncpg.Connection, baseline_sql: str, tables: list[str]
) -> dict[str, TableShape]:
    """The tables as `baseline_sql` creates them, described in a scratch schema that is
    rolled back: nothing of it stays in the database."""
    shapes: dict[str, TableShape] = {}
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE SCHEMA {SCRATCH}")
            # public stays on the path: the vector type lives there.
            await conn.execute(f"SET LOCAL search_path = {SCRATCH}, public")
            await conn.execute(baseline_sql)
            for t in tables:
                shape = await describe(conn, SCRATCH, t)
                assert shape is not None, f"the baseline migration creates no table {t}"
                shapes[t] = shape
            raise _Rollback
    except _Rollback:
        pass
    return shapes
