"""The error model (issue 22): what a failed reconcile pass means - temporary (retry
with backoff, a condition), permanent (wait for a new spec) or unexpected (a bug:
traceback, Warning Event) - and that no verdict carries a password."""

from __future__ import annotations

import json

import aiohttp
import asyncpg
import kopf
import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from rap_operator import errors
from rap_operator.database import NotMigrated
from rap_operator.policy import Violation
from rap_operator.validation import InvalidRun, MissingInput, PolicyDenied

from analyzer_runtime.ledger.connect import DatabaseUnavailable, InvalidDatabaseURL


def _api(status: int, message: str = "boom") -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"message": message})
    return exc


def _pg(cls: type[asyncpg.PostgresError], message: str = "pg says no") -> asyncpg.PostgresError:
    return cls(message)


CASES: list[tuple[str, BaseException, str, str]] = [
    # (what, exception, kind, reason)
    ("database down", DatabaseUnavailable("database at db:5432: refused"),
     "temporary", "DatabaseUnavailable"),
    ("connection lost mid-query", asyncpg.ConnectionDoesNotExistError("closed"),
     "temporary", "DatabaseUnavailable"),
    ("server shutting down", _pg(asyncpg.AdminShutdownError), "temporary", "DatabaseUnavailable"),
    ("serialization failure", _pg(asyncpg.SerializationError), "temporary", "DatabaseUnavailable"),
    ("deadlock", _pg(asyncpg.DeadlockDetectedError), "temporary", "DatabaseUnavailable"),
    ("too many connections", _pg(asyncpg.TooManyConnectionsError),
     "temporary", "DatabaseUnavailable"),
    ("statement timeout", _pg(asyncpg.QueryCanceledError), "temporary", "DatabaseUnavailable"),
    ("interface: connection closed", asyncpg.InterfaceError("connection is closed"),
     "temporary", "DatabaseUnavailable"),
    ("not migrated", NotMigrated("lacks 0014"), "temporary", "DatabaseNotMigrated"),
    ("secret missing", MissingInput("Secret ns/db does not exist"), "temporary", "InputMissing"),
    ("bad URL in the Secret", InvalidDatabaseURL("not a postgres:// URL"),
     "temporary", "InvalidDatabaseURL"),
    ("API 500", _api(500), "temporary", "ApiError"),
    ("API 503", _api(503), "temporary", "ApiError"),
    ("API throttled", _api(429), "temporary", "ApiError"),
    ("API conflict", _api(409), "temporary", "ApiError"),
    ("API not found", _api(404), "temporary", "ApiError"),
    ("API forbidden", _api(403), "temporary", "ApiForbidden"),
    ("API token expired", _api(401), "temporary", "ApiForbidden"),
    ("API rejects the object", _api(422), "permanent", "ApiRejected"),
    ("API bad request", _api(400), "permanent", "ApiRejected"),
    ("API unreachable", aiohttp.ClientConnectionError("cannot connect"),
     "temporary", "ApiUnavailable"),
    ("connection reset", ConnectionResetError("reset by peer"), "temporary", "ApiUnavailable"),
    ("timeout", TimeoutError(), "temporary", "Timeout"),
    ("kopf temporary", kopf.TemporaryError("later"), "temporary", "Temporary"),
    ("kopf permanent", kopf.PermanentError("never"), "permanent", "Permanent"),
    ("invalid spec", InvalidRun("spec.shards: must be >= 1"), "permanent", "InvalidSpec"),
    ("policy", PolicyDenied([Violation("allowedImages", "spec.image", "no")]), "permanent",
     "PolicyDenied"),
    ("a bug", KeyError("phase"), "unexpected", "Unexpected"),
    ("another bug", TypeError("'NoneType' object is not subscriptable"),
     "unexpected", "Unexpected"),
    ("an SQL bug", _pg(asyncpg.UndefinedColumnError), "unexpected", "DatabaseError"),
    ("API 418", _api(418), "unexpected", "Unexpected"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "exc", "kind", "reason"), CASES, ids=[c[0] for c in CASES])
def test_classify(what: str, exc: BaseException, kind: str, reason: str) -> None:
    verdict = errors.classify(exc)
    assert (verdict.kind, verdict.reason) == (kind, reason)
    assert verdict.reason in errors.REASONS  # the metric's label set stays bounded
    assert verdict.retry == (kind != "permanent")
    assert verdict.message and "\n" not in verdict.message


def test_a_bug_is_named_with_its_type() -> None:
    verdict = errors.classify(KeyError("phase"))
    assert verdict.message.startswith("KeyError")


SECRET_URL = "postgresql://rap:s3cr3t-pw@db.example:5432/rap"


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError(f"cannot use {SECRET_URL}"),
        DatabaseUnavailable(f"cannot connect to {SECRET_URL}"),
        _api(500, f"webhook called with {SECRET_URL}"),
        kopf.PermanentError(f"bad url {SECRET_URL}"),
    ],
)
def test_no_verdict_carries_a_password(exc: BaseException) -> None:
    verdict = errors.classify(exc)
    assert "s3cr3t-pw" not in verdict.message
    event = errors.unexpected_event_message("AnalysisRun", verdict)
    assert "s3cr3t-pw" not in event


def test_the_unexpected_event_says_what_to_do() -> None:
    text = errors.unexpected_event_message("AnalysisRun", errors.classify(ValueError("x" * 5000)))
    assert "retries" in text and "log" in text and "traceback" in text
    assert len(text) <= 1000
