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


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def anchor(text: str) -> str:
    """An explicit heading id (attr_list) from a dotted path or a command line."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
