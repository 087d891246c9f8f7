"""The environment variables, from the contract's table (analyzer_runtime.contract.env
ENV_VARS: name, description, which processes read it).

Pure: takes the table's entries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rap_devtools.docs_reference.markdown import cell, code, table


def render_section(entries: Iterable[Any]) -> str:
    """A table in the order of the contract's table, which groups related variables."""
    rows = [[code(e.name), cell(_used_by(e.used_by)), cell(e.description)] for e in entries]
    return table(["Variable", "Read by", "Description"], rows)


def _used_by(used_by: Any) -> str:
    if isinstance(used_by, str):
        return used_by
    return ", ".join(str(getattr(u, "value", u)) for u in used_by)
