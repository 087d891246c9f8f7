"""The Helm chart's values: every key of values.yaml with its default and the comment
written above it (helm-docs' `# --` convention: a block's description starts at
its last `# --` line; a block without one is all description).

Pure: takes the text of values.yaml."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from rap_devtools.docs_reference.markdown import anchor, cell, code, table, with_details


@dataclass(frozen=True)
class ValueDoc:
    key: str  # operator.leaderElection.enabled
    default: Any
    leaf: bool  # False for a map with keys of its own (its keys have rows too)
    description: str


def values(text: str) -> list[ValueDoc]:
    """Every key of values.yaml in file order; a map's keys after the map's row. A
    list, an empty map and a scalar are leaves."""
    lines = text.splitlines()
    root = yaml.compose(text)
    data = yaml.safe_load(text)
    if not isinstance(root, yaml.MappingNode):
        raise ValueError("values.yaml is not a map")
    return list(_walk(root, data, "", lines))


def _walk(node: yaml.MappingNode, data: dict[str, Any], prefix: str, lines: list[str]) -> Any:
    for key_node, value_node in node.value:
        key = str(key_node.value)
        path = f"{prefix}.{key}" if prefix else key
        value = data[key]
        is_map = isinstance(value_node, yaml.MappingNode) and bool(value_node.value)
        yield ValueDoc(
            key=path,
            default=None if is_map else value,
            leaf=not is_map,
            description=comment_above(lines, key_node.start_mark.line),
        )
        if is_map:
            yield from _walk(value_node, value, path, lines)


def comment_above(lines: list[str], line: int) -> str:
    """The comment block directly above `line` (0-based), as one paragraph."""
    block: list[str] = []
    i = line - 1
    while i >= 0 and lines[i].lstrip().startswith("#"):
        block.insert(0, lines[i].strip().removeprefix("#").strip())
        i -= 1
    marks = [n for n, text in enumerate(block) if text.startswith("--")]
    if marks:
        block = block[marks[-1] :]
        block[0] = block[0].removeprefix("--").strip()
    return " ".join(text for text in block if text)


def yaml_default(value: Any) -> str:
    """A default as one line of YAML flow (what `--set` or a values file would say)."""
    if isinstance(value, str):
        return json.dumps(value)
    text: str = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def render_section(docs: list[ValueDoc]) -> str:
    """One table per top-level key: its own row, then every key under it."""
    out: list[str] = []
    top_level = [d for d in docs if "." not in d.key]
    scalars = [d for d in top_level if d.leaf]
    if scalars:
        out.append("### Top-level values {#values-top-level}\n")
        out.append(_table(scalars))
    for group in (d for d in top_level if not d.leaf):
        out.append(f"### `{group.key}` {{#values-{anchor(group.key)}}}\n")
        if group.description:
            out.append(cell(group.description) + "\n")
        out.append(_table([d for d in docs if d.key.startswith(group.key + ".")]))
    return "\n".join(out)


def _table(docs: list[ValueDoc]) -> str:
    rows = [
        [
            code(d.key),
            with_details(
                cell(d.description), [("Default", code(yaml_default(d.default)) if d.leaf else "")]
            ),
        ]
        for d in docs
    ]
    return table(["Key", "Description"], rows)
