"""What `db adopt` does to analysis_results values the new schema refuses: pure rules
(from the legacy and target column shapes) and the one UPDATE that applies them all.

One statement per batch rewrites each row at most once, however many of its columns
need a fix: every extra UPDATE would write a whole new row version (and every index
entry) again.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer_runtime.db.schema_shape import Column

LEGACY_VERSION = "legacy"
UNKNOWN_ANALYZER = "unknown"
KEPT = "original kept in analysis_data.legacy"

# NULL in a column the new schema makes NOT NULL: the value it gets (SQL). Columns not
# listed get the new schema's default.
FILL = {
    ("tracks", "title"): "''",
    ("tracks", "artist"): "''",
    ("tracks", "scraped_date"): "coalesce(created_at::timestamptz, now())",
    ("tracks", "created_at"): "coalesce(scraped_date::timestamptz, now())",
    ("analysis_results", "analyzer_type"): f"'{UNKNOWN_ANALYZER}'",
    ("analysis_results", "model_version"): f"'{LEGACY_VERSION}'",
}
SCORES = ("confidence", "complexity_score")


@dataclass(frozen=True)
class Fix:
    kind: str
    when: str  # SQL over the old value, written {v}
    to: str  # SQL over the old value, written {v}
    action: str
    keep: bool = False  # the old value goes to analysis_data.legacy.<column>


def varchar_width(type_: str) -> int | None:
    if type_.startswith("character varying(") and type_.endswith(")"):
        return int(type_[len("character varying(") : -1])
    return None


def value_fixes(legacy: dict[str, Column], target: dict[str, Column]) -> dict[str, list[Fix]]:
    """The fixes per column of analysis_results, in the order they are tried (the first
    that matches a value wins). Every legacy column exists (prepare added the missing)."""
    fixes: dict[str, list[Fix]] = {}

    def add(column: str, fix: Fix) -> None:
        fixes.setdefault(column, []).append(fix)

    for col in target.values():
        old = legacy[col.name]
        if col.name != "id" and col.not_null and not old.not_null:
            fill = FILL.get(("analysis_results", col.name), col.default)
            if fill is not None:  # track_id: orphans were moved aside
                add(col.name, Fix("NULL", "{v} IS NULL", f"({fill})::{old.type}", f"set to {fill}"))
    add(
        "analysis_data",
        Fix(
            "not a JSON object",
            "jsonb_typeof({v}::jsonb) <> 'object'",
            "jsonb_build_object('legacy', jsonb_build_object('analysis_data', {v}::jsonb))",
            'wrapped as {"legacy": {"analysis_data": <value>}}',
        ),
    )
    if legacy["themes"].type != target["themes"].type:
        # Conditions without casts: CASE guarantees only that a THEN is evaluated for
        # the rows its WHEN matched, so `{v}::jsonb` stays in the THENs.
        json_string = "{v} IS JSON SCALAR AND {v} ~ '^\\s*\"'"
        add(
            "themes",
            Fix(
                "JSON string",
                json_string,
                "jsonb_build_array({v}::jsonb #>> '{}')::text",
                "became a one-element JSON array",
            ),
        )
        add("themes", Fix("empty text", "btrim({v}) = ''", "'[]'", "became []"))
        add(
            "themes",
            Fix(
                "plain text",
                "NOT {v} IS JSON ARRAY",
                "jsonb_build_array({v})::text",
                f"became a one-element JSON array of the text ({KEPT})",
                keep=True,
            ),
        )
    for name in SCORES:
        if legacy[name].type == target[name].type:
            continue
        add(
            name,
            Fix("out of range 0-1", "{v} < 0 OR {v} > 1", "NULL", f"set to NULL ({KEPT})", True),
        )
        add(
            name,
            Fix(
                "more than 4 decimals",
                "round({v}::numeric, 4) <> {v}::numeric",
                "{v}",  # the type change rounds it
                f"rounded to 4 decimals ({KEPT})",
                True,
            ),
        )
    for col in target.values():
        width = varchar_width(col.type)
        if width is None or col.not_null or varchar_width(legacy[col.name].type) == width:
            continue  # NOT NULL ones too long are refused before anything changes
        add(
            col.name,
            Fix(
                f"longer than {width} characters",
                f"length({{v}}) > {width}",
                "NULL",
                f"set to NULL ({KEPT})",
                True,
            ),
        )
    return fixes


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def fix_sql(fixes: dict[str, list[Fix]], span: str) -> str:
    """One statement applying `fixes` to the rows `span` selects; it returns
    (col, kind, n): how many rows each fix changed, `col` the index in `fixes`."""
    cols = list(fixes)
    selected, sets, kept = [], [], []
    for i, col in enumerate(cols):
        whens = " ".join(
            f"WHEN {f.when.replace('{v}', _q(col))} THEN {_lit(f.kind)}" for f in fixes[col]
        )
        selected.append(f"{_q(col)} AS v{i}, CASE {whens} END AS k{i}")
        new = " ".join(
            f"WHEN {_lit(f.kind)} THEN {f.to.replace('{v}', f'hit.v{i}')}" for f in fixes[col]
        )
        value = f"CASE hit.k{i} {new} ELSE hit.v{i} END"
        if col == "analysis_data":
            data = value
        else:
            sets.append(f"{_q(col)} = {value}")
        keep = [f.kind for f in fixes[col] if f.keep]
        if keep:
            kinds = ", ".join(_lit(k) for k in keep)
            kept.append(f"{_lit(col)}, CASE WHEN hit.k{i} IN ({kinds}) THEN to_jsonb(hit.v{i}) END")
    if "analysis_data" not in fixes:
        data = "a.analysis_data"
    if kept:
        originals = f"jsonb_strip_nulls(jsonb_build_object({', '.join(kept)}))"
        data = (
            f"CASE WHEN {originals} = '{{}}' THEN {data}"
            f" ELSE jsonb_set(coalesce({data}, '{{}}'), '{{legacy}}',"
            f" coalesce(({data})->'legacy', '{{}}') || {originals}) END"
        )
    sets.append(f"analysis_data = {data}")
    any_hit = " OR ".join(f"k{i} IS NOT NULL" for i in range(len(cols)))
    pairs = ", ".join(f"({i}, k{i})" for i in range(len(cols)))
    return f"""WITH k AS (SELECT id, {", ".join(selected)} FROM analysis_results WHERE {span}),
        hit AS (SELECT * FROM k WHERE {any_hit}),
        upd AS (UPDATE analysis_results a SET {", ".join(sets)} FROM hit WHERE a.id = hit.id)
        SELECT x.col, x.kind, count(*) AS n
        FROM hit, LATERAL (VALUES {pairs}) x(col, kind)
        WHERE x.kind IS NOT NULL GROUP BY 1, 2"""
