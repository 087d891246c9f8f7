"""The base of every spec model, and references shared by the custom resources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

NUL_MESSAGE = "must not contain NUL (\\0) characters"
SURROGATE_MESSAGE = "must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)"


def _short(text: str) -> str:
    """`text` as a Python literal (so a NUL shows as \\x00), short."""
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL_MESSAGE
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. YAML's "\ud800"
        return SURROGATE_MESSAGE
    return None


def text_problem(value: Any, where: str = "") -> tuple[str, str] | None:
    """(what is wrong, where and with what) for the first string in `value` (a string,
    or strings inside lists and dict keys and values) that Postgres text/jsonb cannot
    hold; None when there is none. Models inside `value` are skipped: they check
    their own fields."""
    if isinstance(value, str):
        problem = _text_problem(value)
        if problem is None:
            return None
        return problem, f"got {_short(value)}" + (f" at {where}" if where else "")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and (problem := _text_problem(key)) is not None:
                return problem, f"got {_short(key)} as a key" + (f" at {where}" if where else "")
            found = text_problem(item, f"{where}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            found = text_problem(item, f"{where}[{i}]")
            if found is not None:
                return found
    return None


class PostgresTextModel(BaseModel):
    """Refuses, in every field, strings Postgres text and jsonb cannot store: NUL
    characters and lone surrogates. A run's whole spec is stored as jsonb, so one
    such string anywhere would otherwise pass `validate` and crash planning. The CRD
    generator adds the matching `pattern` (NUL_FREE_PATTERN) to the string schemas."""

    # Fields not checked: a manifest's `status` is the operator's, never stored.
    text_unchecked_fields: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*")
    @classmethod
    def _postgres_text(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name in cls.text_unchecked_fields:
            return value
        found = text_problem(value)
        if found is not None:
            problem, detail = found
            raise PydanticCustomError("postgres_text", problem + ", {detail}", {"detail": detail})
        return value


class SpecModel(PostgresTextModel):
    """Common configuration: camelCase on the wire, typos refused, strict scalar types,
    no NUL characters in any string."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        # YAML's .nan/.inf: not JSON, so neither the API server nor jsonb takes them.
        allow_inf_nan=False,
    )

    def dump(self) -> dict[str, Any]:
        """The camelCase dict a user would write (unset optional fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SecretKeyRef(SpecModel):
    """A key of a Secret in the run's namespace."""

    name: str = Field(min_length=1, description="Name of the Secret.")
    key: str = Field(min_length=1, description="Key inside the Secret.")
