"""The value fixes `db adopt` derives from the legacy and target column shapes."""

from __future__ import annotations

from analyzer_runtime.db.adopt_fixes import fix_sql, value_fixes, varchar_width
from analyzer_runtime.db.schema_shape import Column

TARGET = {
    "id": Column("id", "integer", True, "nextval('analysis_results_id_seq'::regclass)"),
    "track_id": Column("track_id", "integer", True, None),
    "analyzer_type": Column("analyzer_type", "character varying(50)", True, None),
    "model_version": Column("model_version", "character varying(100)", True, None),
    "sentiment": Column("sentiment", "character varying(50)", False, None),
    "confidence": Column("confidence", "numeric(5,4)", False, None),
    "themes": Column("themes", "jsonb", True, "'[]'::jsonb"),
    "complexity_score": Column("complexity_score", "numeric(5,4)", False, None),
    "analysis_data": Column("analysis_data", "jsonb", True, "'{}'::jsonb"),
    "created_at": Column("created_at", "timestamp with time zone", True, "now()"),
}

PLATFORM = {
    "id": TARGET["id"],
    "track_id": Column("track_id", "integer", False, None),
    "analyzer_type": Column("analyzer_type", "character varying(50)", False, None),
    "model_version": Column("model_version", "character varying", False, None),
    "sentiment": Column("sentiment", "character varying", False, None),
    "confidence": Column("confidence", "numeric", False, None),
    "themes": Column("themes", "text", False, None),
    "complexity_score": Column("complexity_score", "numeric", False, None),
    "analysis_data": Column("analysis_data", "jsonb", False, None),
    "created_at": Column("created_at", "timestamp without time zone", False, "now()"),
}


def kinds(fixes: dict) -> dict[str, list[str]]:
    return {col: [f.kind for f in fs] for col, fs in fixes.items()}


def test_the_platforms_columns_get_every_fix() -> None:
    fixes = value_fixes(PLATFORM, TARGET)
    assert kinds(fixes) == {
        "analyzer_type": ["NULL"],
        "model_version": ["NULL"],
        "themes": ["NULL", "JSON string", "empty text", "plain text"],
        "analysis_data": ["NULL", "not a JSON object"],
        "created_at": ["NULL"],
        "confidence": ["out of range 0-1", "more than 4 decimals"],
        "complexity_score": ["out of range 0-1", "more than 4 decimals"],
        "sentiment": ["longer than 50 characters"],
    }
    # NULL fills are cast to the legacy type: the types change only at the end.
    [fill] = fixes["model_version"]
    assert fill.to == "('legacy')::character varying"
    # Originals are kept only where the value itself is lost or changed.
    kept = {(c, f.kind) for c, fs in fixes.items() for f in fs if f.keep}
    assert kept == {
        ("themes", "plain text"),
        ("confidence", "out of range 0-1"),
        ("confidence", "more than 4 decimals"),
        ("complexity_score", "out of range 0-1"),
        ("complexity_score", "more than 4 decimals"),
        ("sentiment", "longer than 50 characters"),
    }


def test_a_database_already_in_shape_only_checks_analysis_data() -> None:
    assert kinds(value_fixes(TARGET, TARGET)) == {"analysis_data": ["not a JSON object"]}


def test_one_statement_updates_each_row_once() -> None:
    sql = fix_sql(value_fixes(PLATFORM, TARGET), "id >= $1 AND id < $2")
    assert sql.count("UPDATE analysis_results") == 1
    assert sql.count("analysis_data =") == 1  # its own fix and the originals, together
    assert "{v}" not in sql


def test_varchar_width() -> None:
    assert varchar_width("character varying(100)") == 100
    assert varchar_width("character varying") is None
    assert varchar_width("text") is None
