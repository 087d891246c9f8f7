"""Markdown pieces the generated pages share: table cells, code spans, tables."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any


def cell(text: str) -> str:
    """`text` safe inside a table cell: one line, no column break, no raw HTML."""
    one_line = " ".join(text.split())
    # Odd pieces are code spans: shown verbatim, so an entity there would show as
    # one; Python-Markdown's tables do not split a row at a pipe inside them.
    pieces = one_line.split("`")
    for i in range(0, len(pieces), 2):
        pieces[i] = pieces[i].replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(pieces)


def code(text: str) -> str:
    """`text` as a code span (Python-Markdown's tables do not split a row at a pipe
    inside one)."""
    if not text:
        return ""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    one_line = " ".join(text.split())
    return f"{fence}{pad}{one_line}{pad}{fence}"


def literal(value: Any) -> str:
    """A default or an enum member as the YAML/JSON reader would write it."""
    return code(json.dumps(value, sort_keys=True, ensure_ascii=False))


# The class docs/stylesheets/reference.css styles: the first column's names (field
# paths, options) stay on one line instead of breaking mid-word.
TABLE_CLASS = "rap-reference"


def with_details(text: str, details: Iterable[tuple[str, str]]) -> str:
    """A cell: `text` (already Markdown), then a second line of `label: value` pairs
    (those with a value), so a table needs no column per detail."""
    parts = [f"{label}: {value}" if label else value for label, value in details if value]
    if not parts:
        return text
    return f"{text}<br>" + " · ".join(parts) if text else " · ".join(parts)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    # md_in_html: Markdown inside the div is still Markdown.
    body = "\n".join(lines)
    return f'<div class="{TABLE_CLASS}" markdown>\n\n{body}\n\n</div>\n'


def anchor(text: str) -> str:
    """An explicit heading id (attr_list) from a dotted path or a command line."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
