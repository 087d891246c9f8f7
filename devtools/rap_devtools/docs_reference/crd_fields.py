"""The fields of a custom resource, read from its CRD's OpenAPI schema (the one
`make crds` writes from the pydantic models, so the page and the API server agree).

Pure: takes the CRD as a dict, returns FieldDocs and Markdown."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from rap_devtools.docs_reference.markdown import anchor, cell, code, literal, table, with_details

# Every string of a spec carries this pattern (Postgres cannot store NUL); the page
# says so once instead of on each of a hundred rows.
NUL_FREE_PATTERN = "^[^\\x00]*$"


@dataclass(frozen=True)
class FieldDoc:
    path: str  # spec.llm.batch.completionWindow; [] for a list's items, {} for a map's values
    type: str
    description: str
    required: bool
    default: Any
    has_default: bool
    constraints: tuple[str, ...]
    has_children: bool


def root_schema(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of the CRD's (single) version."""
    versions = crd["spec"]["versions"]
    if len(versions) != 1:
        raise ValueError(f"expected one version, found {[v['name'] for v in versions]}")
    schema: dict[str, Any] = versions[0]["schema"]["openAPIV3Schema"]
    return schema


def walk(schema: Mapping[str, Any], path: str) -> Iterator[FieldDoc]:
    """A FieldDoc for every property under `schema`, depth first, in name order."""
    required = set(schema.get("required", ()))
    for name, sub in sorted(schema.get("properties", {}).items()):
        yield from _field(sub, f"{path}.{name}" if path else name, name in required)
    # Arrays and maps of objects: their items' fields have paths of their own.
    if isinstance(items := schema.get("items"), dict):
        yield from walk(items, path + "[]")
    if isinstance(values := schema.get("additionalProperties"), dict):
        yield from walk(values, path + "{}")


def _field(schema: Mapping[str, Any], path: str, required: bool) -> Iterator[FieldDoc]:
    children = list(walk(schema, path))
    yield FieldDoc(
        path=path,
        type=type_name(schema),
        description=str(schema.get("description", "")),
        required=required,
        default=schema.get("default"),
        has_default="default" in schema,
        constraints=tuple(constraints(schema)),
        has_children=bool(children),
    )
    yield from children


def type_name(schema: Mapping[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "integer or string"
    kind = str(schema.get("type", "object"))
    if fmt := schema.get("format"):
        kind += f" ({fmt})"
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {type_name(schema['items'])}"
    if isinstance(schema.get("additionalProperties"), dict):
        return f"map of {type_name(schema['additionalProperties'])}"
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return f"{kind} (free-form)"
    return kind


def constraints(schema: Mapping[str, Any]) -> Iterator[str]:
    """The limits on a value, each as Markdown ready for a table cell."""
    if "enum" in schema:
        yield "one of " + ", ".join(literal(v) for v in schema["enum"])
    for key, strict, inclusive, exclusive in (
        ("minimum", "exclusiveMinimum", "≥", "greater than"),
        ("maximum", "exclusiveMaximum", "≤", "less than"),
    ):
        if key in schema:
            yield f"{exclusive if schema.get(strict) else inclusive} {schema[key]}"
    for key, word in (
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("minItems", "items ≥"),
        ("maxItems", "items ≤"),
    ):
        if key in schema:
            yield f"{word} {schema[key]}"
    if (pattern := schema.get("pattern")) and pattern != NUL_FREE_PATTERN:
        yield "pattern " + code(pattern)
    if schema.get("nullable"):
        yield "may be null"
    for rule in schema.get("x-kubernetes-validations", ()):
        yield "rule: " + (cell(rule["message"]) if rule.get("message") else code(rule["rule"]))


def missing_descriptions(fields: list[FieldDoc], skip: frozenset[str]) -> list[str]:
    """Paths of the fields without a description. A list's items ([]) and a map's
    values ({}) are described by their field; `skip` is what Kubernetes describes
    (metadata)."""
    return [
        f.path
        for f in fields
        if not f.description.strip() and f.path not in skip and not f.path.endswith(("[]", "{}"))
    ]


def render_page(
    title: str, crd: Mapping[str, Any], intro: str, sections: tuple[str, ...] = ("spec", "status")
) -> str:
    """The Markdown page of one kind: a table per object (spec, spec.llm, ...), each
    object's row linking to its own table."""
    root = root_schema(crd)
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]["name"]
    out = [
        f"# {title}\n",
        cell(str(root.get("description", ""))) + " " + intro + "\n",
        table(
            ["apiVersion", "kind", "plural", "short name", "scope"],
            [
                [
                    code(f"{crd['spec']['group']}/{version}"),
                    code(names["kind"]),
                    code(names["plural"]),
                    ", ".join(code(s) for s in names.get("shortNames", ())),
                    crd["spec"]["scope"],
                ]
            ],
        ),
        "Generated on every build of this site from the pydantic models "
        "(`analyzer_runtime/contract/`) through the CRD schema that `make crds` writes: "
        "the names, types, defaults and limits here are the ones the API server "
        "enforces. Every string field also refuses the NUL character (Postgres cannot "
        "store it).\n",
    ]
    for section in sections:
        schema = root["properties"][section]
        fields = list(walk(schema, section))
        out.append(_object_section(section, schema, fields))
        for f in fields:
            if f.has_children:
                out.append(_object_section(f.path, None, _children_of(f.path, fields), f))
    columns = crd["spec"]["versions"][0].get("additionalPrinterColumns", ())
    if columns:
        out.append("## `kubectl get` columns\n")
        out.append(
            table(
                ["Column", "Value", "Shown"],
                [
                    [
                        c["name"],
                        code(c["jsonPath"]),
                        "with -o wide" if c.get("priority") else "always",
                    ]
                    for c in columns
                ],
            )
        )
    return "\n".join(out)


def _children_of(path: str, fields: list[FieldDoc]) -> list[FieldDoc]:
    prefix = len(path)
    return [
        f
        for f in fields
        if f.path.startswith(path) and f.path != path and _is_direct_child(f.path[prefix:])
    ]


def _is_direct_child(rest: str) -> bool:
    """`.name`, `[].name`, `{}.name`, `[]`, `{}` - one level down."""
    for lead in ("[]", "{}"):
        rest = rest.removeprefix(lead)
    return rest.startswith(".") and rest.count(".") == 1


def _object_section(
    path: str, schema: Mapping[str, Any] | None, fields: list[FieldDoc], doc: FieldDoc | None = None
) -> str:
    direct = _children_of(path, fields) if schema is not None else fields
    description = doc.description if doc else str((schema or {}).get("description", ""))
    heading = f"## `{path}` {{#{anchor(path)}}}\n"
    lines = [heading]
    if doc is not None:
        lines.append(f"{cell(description)} Type: {doc.type}.\n")
    elif description:
        lines.append(cell(description) + "\n")
    rows = [_row(f) for f in direct if not f.path.endswith(("[]", "{}"))]
    if rows:
        lines.append(table(["Field", "Description"], rows))
    return "\n".join(lines)


def _row(f: FieldDoc) -> list[str]:
    name = code(f.path)
    if f.has_children:
        name = f"[{name}](#{anchor(f.path)})"
    kind = cell(f.type) + (", required" if f.required else "")
    return [
        f"{name}<br>{kind}",
        with_details(
            cell(f.description),
            [
                ("Default", literal(f.default) if f.has_default else ""),
                ("", " · ".join(f.constraints)),
            ],
        ),
    ]
