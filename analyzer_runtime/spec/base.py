"""The base of every spec model, and references shared by the custom resources."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """Common configuration: camelCase on the wire, typos refused, strict scalar types."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
    )

    def dump(self) -> dict[str, Any]:
        """The camelCase dict a user would write (unset optional fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SecretKeyRef(SpecModel):
    """A key of a Secret in the run's namespace."""

    name: str = Field(min_length=1, description="Name of the Secret.")
    key: str = Field(min_length=1, description="Key inside the Secret.")
