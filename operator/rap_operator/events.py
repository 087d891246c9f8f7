"""Kubernetes Events about a run object, posted through kopf's event queue.

kopf types the object as its `Body` wrapper, yet reads only apiVersion, kind and
metadata from it with Mapping.get (kopf's build_object_reference), so the plain dict
the operator holds goes as it is; the one cast says so here, not at every call."""

from __future__ import annotations

from typing import Any, cast

import kopf


def _body(obj: dict[str, Any]) -> kopf.Body:
    return cast(kopf.Body, obj)


def event(obj: dict[str, Any], *, type: str, reason: str, message: str) -> None:
    kopf.event(_body(obj), type=type, reason=reason, message=message)


def info(obj: dict[str, Any], *, reason: str, message: str) -> None:
    kopf.info(_body(obj), reason=reason, message=message)


def warn(obj: dict[str, Any], *, reason: str, message: str) -> None:
    kopf.warn(_body(obj), reason=reason, message=message)
