"""The command line, read from the click commands typer builds (every command,
argument and option, with its help, default, range and environment variable).

Pure: takes the root click command; duck-typed, because typer ships its own copy of
click (typer._click) whose classes are not click's."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from rap_devtools.docs_reference.markdown import anchor, cell, code, table, with_details


@dataclass(frozen=True)
class ParamDoc:
    name: str  # the Python parameter name
    kind: str  # "argument" or "option"
    usage: str  # as --help writes it: "--limit <int range>", "--progress / --no-progress"
    help: str
    default: str  # "" when there is none worth showing
    required: bool
    envvar: str
    bounds: str  # "1 <= x <= 100", "x >= 1", ""
    repeatable: bool


@dataclass(frozen=True)
class CommandDoc:
    path: tuple[str, ...]  # ("rap-analyzer", "db", "migrate")
    help: str
    usage: str
    params: tuple[ParamDoc, ...]
    subcommands: tuple[str, ...]

    @property
    def line(self) -> str:
        return " ".join(self.path)


def commands(root: Any, context_class: Any, name: str) -> list[CommandDoc]:
    """Every visible command under `root` (itself first), depth first in the order
    `--help` lists them. `context_class` is the click Context class of `root`."""
    return list(_walk(root, context_class(root, info_name=name), (name,), context_class))


def _walk(cmd: Any, ctx: Any, path: tuple[str, ...], context_class: Any) -> Iterator[CommandDoc]:
    subs = [
        (n, c) for n, c in getattr(cmd, "commands", {}).items() if not getattr(c, "hidden", False)
    ]
    yield CommandDoc(
        path=path,
        help=(cmd.help or cmd.short_help or "").strip(),
        usage=" ".join([*path, *cmd.collect_usage_pieces(ctx)]),
        params=tuple(_param(p, ctx) for p in cmd.params if not getattr(p, "hidden", False)),
        subcommands=tuple(n for n, _ in subs),
    )
    for sub_name, sub in subs:
        sub_ctx = context_class(sub, info_name=sub_name, parent=ctx)
        yield from _walk(sub, sub_ctx, (*path, sub_name), context_class)


def _param(p: Any, ctx: Any) -> ParamDoc:
    record = p.get_help_record(ctx)
    is_option = p.param_type_name == "option"
    return ParamDoc(
        name=p.name,
        kind="option" if is_option else "argument",
        usage=record[0] if record else p.name,
        help=(getattr(p, "help", None) or "").strip(),
        default="" if p.required else _default(p),
        required=bool(p.required),
        envvar=", ".join(p.envvar) if isinstance(p.envvar, list | tuple) else (p.envvar or ""),
        bounds=_bounds(getattr(p, "min", None), getattr(p, "max", None)),
        repeatable=bool(p.multiple),
    )


def _default(p: Any) -> str:
    value = p.default
    if callable(value) or value is None or value == () or value == []:
        return ""
    if getattr(p, "is_flag", False):
        if getattr(p, "secondary_opts", None):
            # --progress / --no-progress: the default is one of the two spellings.
            return str(p.opts[0] if value else p.secondary_opts[0])
        return "" if value is False else "on"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, PurePath):
        value = str(value)
    return str(value)


def _bounds(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"{low} <= x <= {high}"
    if low is not None:
        return f"x >= {low}"
    if high is not None:
        return f"x <= {high}"
    return ""


def missing_help(docs: list[CommandDoc]) -> list[str]:
    """Commands, arguments and options a reader would find undocumented."""
    out = [d.line for d in docs if not d.help]
    out += [f"{d.line} {p.usage}" for d in docs for p in d.params if not p.help]
    return out


def paragraphs(text: str) -> str:
    """A docstring-style help text as Markdown paragraphs (click's \\b no-rewrap
    marker dropped, hard line breaks joined)."""
    blocks = [b for b in text.replace("\b", "").split("\n\n") if b.strip()]
    return "\n\n".join(cell(b) for b in blocks)


def render_page(docs: list[CommandDoc], intro: str) -> str:
    root, rest = docs[0], docs[1:]
    out = ["# Command line\n", intro + "\n", paragraphs(root.help) + "\n"]
    out.append(code(root.usage) + "\n")
    if root.params:
        out.append("Options of every command (before the command's name):\n")
        out.append(_params_table(root.params))
    out.append("## Commands\n")
    out.append(
        table(
            ["Command", "What it does"],
            [[f"[{code(d.line)}](#{anchor(d.line)})", cell(_first_line(d.help))] for d in rest],
        )
    )
    for d in rest:
        # rap-analyzer seed: ###, rap-analyzer db migrate: #### (under the group's).
        level = "#" * min(len(d.path) + 1, 6)
        out.append(f"{level} `{d.line}` {{#{anchor(d.line)}}}\n")
        out.append(paragraphs(d.help) + "\n")
        out.append("```text\n" + d.usage + "\n```\n")
        if d.subcommands:
            out.append(
                "Commands: "
                + ", ".join(f"[{code(s)}](#{anchor(d.line + ' ' + s)})" for s in d.subcommands)
                + ".\n"
            )
        if d.params:
            out.append(_params_table(d.params))
    return "\n".join(out)


def _first_line(text: str) -> str:
    return text.split("\n\n")[0]


def _params_table(params: tuple[ParamDoc, ...]) -> str:
    rows = []
    for p in params:
        flags = [
            "argument" if p.kind == "argument" else "",
            "required" if p.required else "",
            "repeatable" if p.repeatable else "",
        ]
        rows.append(
            [
                code(p.usage),
                with_details(
                    cell(p.help),
                    [
                        ("", ", ".join(f for f in flags if f)),
                        ("Default", code(p.default) if p.default else ""),
                        ("Environment", code(p.envvar) if p.envvar else ""),
                        ("Range", cell(p.bounds)),
                    ],
                ),
            ]
        )
    return table(["Argument / option", "Description"], rows)
