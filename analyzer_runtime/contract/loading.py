"""Reading AnalysisRun and ScrapeJob manifests and explaining what is wrong with them.

Both the CLI (`rap-analyzer run x.yaml`, exit code 2 on a bad spec) and the operator
(`Valid=False` condition) show these messages to a person, so they name the field in
the camelCase form the person wrote and say what would be accepted - never a
pydantic error dump or a stack trace.
"""

from __future__ import annotations

import codecs
import difflib
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from analyzer_runtime.contract.base import SURROGATE_MESSAGE
from analyzer_runtime.contract.models import (
    KIND,
    AnalysisRunManifest,
    AnalyzerName,
    FallbackAnalyzerName,
)
from analyzer_runtime.contract.scrape_models import SCRAPE_KIND, ScrapeJobManifest

# The manifest model behind a ValidationError (its `title`): field paths and "did you
# mean" suggestions are looked up in the model that was validated.
_ROOTS: dict[str, type[BaseModel]] = {
    m.__name__: m for m in (AnalysisRunManifest, ScrapeJobManifest)
}


class RunSpecError(ValueError):
    """A manifest problem that is not a field error: not YAML, not a mapping, wrong kind."""


def load_manifest(text_or_dict: str | bytes | Mapping[str, Any]) -> AnalysisRunManifest:
    """Parse and validate one AnalysisRun (YAML/JSON text or an already-parsed dict).

    Raises RunSpecError for document-level problems and pydantic.ValidationError for
    field errors (turn it into text with `format_validation_error`).
    """
    return _load(text_or_dict, AnalysisRunManifest, KIND)


def load_scrape_manifest(text_or_dict: str | bytes | Mapping[str, Any]) -> ScrapeJobManifest:
    """`load_manifest` for a ScrapeJob."""
    return _load(text_or_dict, ScrapeJobManifest, SCRAPE_KIND)


M = typing.TypeVar("M", bound=BaseModel)


def _load(text_or_dict: str | bytes | Mapping[str, Any], model: type[M], kind_name: str) -> M:
    data: Any = text_or_dict
    if isinstance(text_or_dict, bytes):
        text_or_dict = decode_manifest(text_or_dict)
    if isinstance(text_or_dict, str):
        data = _parse_yaml(text_or_dict, kind_name)
    if not isinstance(data, Mapping):
        raise RunSpecError(
            "expected a YAML mapping with apiVersion, kind, metadata and spec; "
            f"got {_kind_of(data)}"
        )
    kind = data.get("kind")
    if kind is not None and kind != kind_name:
        raise RunSpecError(f"kind: expected '{kind_name}', got {_show(kind)}")
    try:
        # Manifests must use the camelCase wire names (the API server knows no others);
        # Python code may still construct models by field name (populate_by_name).
        return model.model_validate(dict(data), by_alias=True, by_name=False)
    except TypeError:  # pragma: no cover - pydantic < 2.11 has no by_name
        return model.model_validate(dict(data))


def load_manifest_file(path: str | Path) -> AnalysisRunManifest:
    """`load_manifest` on a file; a missing, unreadable or non-UTF-8 file is a RunSpecError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RunSpecError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return load_manifest(decode_manifest(data, str(path)))


# Byte-order marks of encodings PyYAML would read (UTF-16) or we can name; UTF-32
# first, because its little-endian mark starts with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _wide_encoding(data: bytes) -> str | None:
    """UTF-16 or UTF-32 when the start of `data` is mostly NUL bytes, as ASCII text in
    those encodings is. (A lone NUL in UTF-8 text is left to the YAML reader's error.)"""
    head = data[:256]
    if len(head) < 4:
        return None
    zeros = head.count(0) / len(head)
    if zeros >= 0.7:
        return "UTF-32"
    if zeros >= 0.4:
        return "UTF-16"
    return None


def decode_manifest(data: bytes, name: str = "the manifest") -> str:
    """The text of a manifest given as bytes, which must be UTF-8 (a UTF-8 byte-order
    mark is dropped). Anything else is a RunSpecError naming the encoding it looks like:
    `kubectl` and the API server read manifests as UTF-8 only, so a file that PyYAML
    alone would accept (UTF-16 with a BOM) must not pass `validate`."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise RunSpecError(
                f"{name} is {encoding} (it starts with a {encoding} byte-order mark); "
                "save it as UTF-8"
            )
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    wide = _wide_encoding(data)
    if wide is not None:
        # Valid UTF-8 as far as bytes go, but ASCII text in UTF-16/32 without a BOM.
        raise RunSpecError(
            f"{name} looks like {wide} without a byte-order mark ({wide} puts NUL bytes "
            "between ASCII characters); save it as UTF-8"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunSpecError(
            f"{name} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None


def describe_error(exc: BaseException) -> str:
    """The person-readable text for anything `load_manifest` raises."""
    if isinstance(exc, ValidationError):
        return format_validation_error(exc)
    return str(exc)


def _parse_yaml(text: str, kind_name: str = KIND) -> Any:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RunSpecError(f"not valid YAML{where}: {problem}") from exc
    if not docs:
        raise RunSpecError(f"the document is empty; expected a {kind_name} manifest")
    if len(docs) > 1:
        raise RunSpecError(f"expected one YAML document, got {len(docs)} (separated by ---)")
    return docs[0]


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: `<camelCase path>: <what is wrong and what is accepted>`."""
    lines: list[str] = []
    root = _ROOTS.get(exc.title, AnalysisRunManifest)
    for err in exc.errors():
        # An unknown key is shown as written, not mapped to the field it resembles.
        raw_last = err["type"] == "extra_forbidden"
        line = f"{_format_loc(err['loc'], root, raw_last=raw_last)}: {_message(err, root)}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


def _format_loc(
    loc: tuple[int | str, ...], root: type[BaseModel], *, raw_last: bool = False
) -> str:
    out = ""
    parts = [*_wire_names(loc[:-1], root), loc[-1]] if raw_last and loc else _wire_names(loc, root)
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def _show(value: Any) -> str:
    """A value as the person wrote it in YAML, short."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping | list | tuple):
        return _kind_of(value)
    return str(value)


def _kind_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing"
    return _show(value)


def _choices(ctx: Mapping[str, Any]) -> list[str]:
    return re.findall(r"'([^']*)'", str(ctx.get("expected", "")))


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
}

_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "less_than_equal": ("<=", "le"),
    "greater_than": (">", "gt"),
    "less_than": ("<", "lt"),
}


def _message(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    etype: str = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    field = next((p for p in reversed(err["loc"]) if isinstance(p, str)), "")
    if etype == "missing":
        return "required"
    if etype == "extra_forbidden":
        return _unknown_field(err["loc"], root)
    if etype == "enum":
        return _enum_message(field, value, _choices(ctx))
    if etype == "literal_error":
        return f"must be {ctx.get('expected')}, got {_show(value)}"
    if etype in _TYPE_WORDS:
        hint = " (put it in quotes)" if etype == "string_type" and value is not None else ""
        return f"must be {_TYPE_WORDS[etype]}, got {_kind_of(value)}{hint}"
    if etype == "string_unicode":  # a lone surrogate: YAML's "\ud800"
        return f"{SURROGATE_MESSAGE}, got {_show(value)}"
    if etype == "finite_number":
        return f"must be a finite number, got {_show(value)}"
    if etype in _BOUNDS:
        op, key = _BOUNDS[etype]
        return f"must be {op} {ctx.get(key)}, got {_show(value)}"
    if etype == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if etype == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if etype == "too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must have at least {n} items"
    if etype == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if etype == "string_pattern_mismatch":
        return _pattern_message(field, err["loc"], value)
    if etype == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])


def _enum_message(field: str, value: Any, choices: list[str]) -> str:
    shown = _show(value) if not isinstance(value, str) else f"'{value}'"
    if field == "analyzer":
        return f"unknown analyzer {shown}; choose one of: {', '.join(AnalyzerName)}"
    if field == "fallbackAnalyzer":
        local = ", ".join(FallbackAnalyzerName)
        if value in set(AnalyzerName):
            return f"{shown} cannot be a fallback (it needs the network); choose one of: {local}"
        return f"unknown analyzer {shown}; choose one of: {local}"
    return f"must be one of: {', '.join(choices)}; got {shown}"


def _pattern_message(field: str, loc: tuple[int | str, ...], value: Any) -> str:
    if loc[:1] == ("metadata",) and field == "name":
        return (
            "must be a lowercase name of letters, digits, '-' and '.', starting and ending "
            f"with a letter or digit (like 'nightly-run'), got {_show(value)}"
        )
    if "resources" in loc:
        return f"must be a Kubernetes quantity such as 500m, 2, 256Mi or 1Gi, got {_show(value)}"
    return f"has an invalid format: {_show(value)}"


def _unknown_field(loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    name = str(loc[-1])
    allowed = _allowed_fields(loc[:-1], root)
    if not allowed:
        return f"unknown field '{name}'"
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if not close:
        close = [a for a in allowed if a.lower() == name.lower()]
    if close:
        return f"unknown field '{name}'; did you mean '{close[0]}'?"
    return f"unknown field '{name}'; allowed fields: {', '.join(sorted(allowed))}"


def _wire_names(loc: tuple[int | str, ...], root: type[BaseModel]) -> list[int | str]:
    """`loc` with Python field names replaced by their aliases: pydantic reports some
    errors (on defaulted fields) by field name, but the person wrote camelCase."""
    out: list[int | str] = []
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or model is None:
            out.append(part)
            continue
        found = next(((n, f) for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if found is None:
            out.append(part)
            model = None
            continue
        out.append(found[1].alias or found[0])
        model = _model_in(found[1].annotation)
    return out


def _allowed_fields(loc: tuple[int | str, ...], root: type[BaseModel]) -> list[str]:
    """Field names (camelCase) of the model at `loc`, found by walking the annotations."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        match = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)),
            None,
        )
        model = _model_in(match.annotation) if match else None
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside `X | None`, `list[X]`, `dict[str, X]` or `Annotated[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return None
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
