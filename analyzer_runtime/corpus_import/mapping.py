"""Which source column feeds which field: the dataset layouts we know, plus `--map`.

Column names are matched case-insensitively, with spaces and hyphens read as
underscores (`Song Name` = `song_name`). For each field the first of its aliases
(fields.FIELDS) found in the file wins; `--map COLUMN=FIELD` sets a column
explicitly, `--map COLUMN=skip` keeps a column out even when its name is known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from analyzer_runtime.corpus_import.fields import BY_NAME, FIELDS, REQUIRED

SKIP = ("skip", "-", "none", "ignore")


class MappingError(ValueError):
    """A --map option that cannot apply, or a file without a title or artist column."""


def normalize_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


def parse_map_options(options: Iterable[str]) -> dict[str, str | None]:
    """`COLUMN=FIELD` strings -> {column: field, or None to skip it}."""
    mapped: dict[str, str | None] = {}
    for opt in options:
        column, sep, field = opt.rpartition("=")
        column, field = column.strip(), field.strip().lower()
        if not sep or not column or not field:
            raise MappingError(f"--map {opt!r}: expected COLUMN=FIELD (e.g. --map Lyric=lyrics)")
        if field in SKIP:
            mapped[column] = None
        elif field not in BY_NAME:
            raise MappingError(
                f"--map {opt!r}: unknown field {field!r}; fields: {', '.join(BY_NAME)}, or skip"
            )
        else:
            mapped[column] = field
    return mapped


@dataclass(frozen=True)
class Mapping:
    fields: dict[str, str]  # field -> source column, in fields.FIELDS order
    ignored: tuple[str, ...]  # source columns no field reads

    def describe(self) -> str:
        pairs = ", ".join(f"{f} <- {c!r}" for f, c in self.fields.items())
        rest = f"; ignored: {', '.join(repr(c) for c in self.ignored)}" if self.ignored else ""
        return f"columns: {pairs}{rest}"


def _find_column(columns: Sequence[str], wanted: str) -> str | None:
    if wanted in columns:
        return wanted
    norm = normalize_header(wanted)
    hits = [c for c in columns if normalize_header(c) == norm]
    return hits[0] if hits else None


def resolve(columns: Sequence[str], overrides: dict[str, str | None] | None = None) -> Mapping:
    """Map the file's columns to fields: explicit --map first, then the known names."""
    chosen: dict[str, str] = {}  # field -> column
    used: set[str] = set()
    for wanted, field in (overrides or {}).items():
        column = _find_column(columns, wanted)
        if column is None:
            raise MappingError(
                f"--map {wanted}=...: the file has no column {wanted!r};"
                f" its columns: {', '.join(repr(c) for c in columns)}"
            )
        used.add(column)
        if field is None:
            continue
        if field in chosen:
            raise MappingError(
                f"--map: field {field!r} is given two columns, {chosen[field]!r} and {column!r}"
            )
        chosen[field] = column
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(normalize_header(c), c)
    for f in FIELDS:
        if f.name in chosen:
            continue
        for alias in f.aliases:
            column = by_norm.get(alias)
            if column is not None and column not in used:
                chosen[f.name] = column
                used.add(column)
                break
    missing = [f for f in REQUIRED if f not in chosen]
    if missing:
        raise MappingError(
            f"no column for {' and '.join(missing)}: the file's columns are"
            f" {', '.join(repr(c) for c in columns) or '(none)'};"
            f" name one with --map COLUMN={missing[0]}"
        )
    ordered = {f.name: chosen[f.name] for f in FIELDS if f.name in chosen}
    read = set(ordered.values())
    return Mapping(ordered, tuple(c for c in columns if c not in read))
