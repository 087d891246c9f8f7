"""What a failed reconcile pass means, as kopf's error model has it (pure: no I/O).

- temporary: time fixes it (the database down or frozen, the API server busy or
  refusing for a moment, a conflict, a timeout, a Secret not applied yet). The pass
  is retried with backoff and the run's `Valid=False` condition says why until a
  pass succeeds.
- permanent: only a new spec fixes it (kopf.PermanentError, an object the API server
  rejects as invalid). No hot retry until the run's generation changes.
- unexpected: anything else, i.e. a bug. The traceback goes to the log, a
  rate-limited Warning Event to the run, and the pass is retried with backoff.

Every verdict is counted in rap_operator_reconcile_errors_total{kind,reason}; the
reasons are the small fixed set below, so the series stay bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import aiohttp
import asyncpg
import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from analyzer_runtime.contract import reasons
from analyzer_runtime.contract.redaction import redact
from analyzer_runtime.ledger.connect import (
    DatabaseUnavailable,
    InvalidDatabaseURL,
    is_connection_error,
)
from rap_operator.database import NotMigrated
from rap_operator.validation import InvalidRun, MissingInput, PolicyDenied

Kind = Literal["temporary", "permanent", "unexpected"]

# The bounded set of reasons (the metric's `reason` label, the condition's reason);
# what each means: contract/reasons.py.
REASONS = (
    reasons.DATABASE_UNAVAILABLE, reasons.DATABASE_NOT_MIGRATED, reasons.DATABASE_ERROR,
    reasons.INPUT_MISSING, reasons.INVALID_DATABASE_URL, reasons.API_ERROR,
    reasons.API_FORBIDDEN, reasons.API_UNAVAILABLE, reasons.TIMEOUT, reasons.TEMPORARY,
    reasons.INVALID_SPEC, reasons.POLICY_DENIED, reasons.API_REJECTED, reasons.PERMANENT,
    reasons.UNEXPECTED,
)  # fmt: skip

# API statuses a retry may get past: conflicts (409), throttling (429), the server
# or etcd in trouble (5xx), and an object not there yet or already gone (404: the
# watch delivers the deletion, which ends the run's loop).
_API_TEMPORARY = {404, 409, 429}
# The API server refused what the spec made the operator send: the same spec gets
# the same answer.
_API_PERMANENT = {400, 422}
# SQLSTATE classes a retry gets past: connection exceptions, transaction rollbacks
# (serialization failures, deadlocks), insufficient resources, operator intervention
# (admin shutdown, statement timeout, canceled query).
_PG_TEMPORARY_CLASSES = ("08", "40", "53", "57")
MESSAGE_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    reason: str  # one of REASONS
    message: str  # for the run's condition and Events: one line, no credentials

    @property
    def retry(self) -> bool:
        """Whether the pass is retried with backoff (a permanent error waits for a
        new generation of the spec)."""
        return self.kind != "permanent"


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return redact(" ".join(text.split()))[:MESSAGE_LIMIT]


def _api_text(exc: ApiException) -> str:
    import json

    try:
        detail = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        detail = None
    return redact(f"the Kubernetes API answered {exc.status} ({detail or exc.reason})")[
        :MESSAGE_LIMIT
    ]


def classify(exc: BaseException) -> Verdict:
    """The verdict on what a reconcile pass raised."""
    if isinstance(exc, kopf.PermanentError):
        return Verdict("permanent", reasons.PERMANENT, _message(exc))
    if isinstance(exc, kopf.TemporaryError):
        return Verdict("temporary", reasons.TEMPORARY, _message(exc))
    if isinstance(exc, PolicyDenied):
        return Verdict("permanent", reasons.POLICY_DENIED, _message(exc))
    if isinstance(exc, InvalidRun):
        return Verdict("permanent", reasons.INVALID_SPEC, _message(exc))
    if isinstance(exc, MissingInput):
        return Verdict("temporary", reasons.INPUT_MISSING, _message(exc))
    if isinstance(exc, NotMigrated):
        return Verdict("temporary", reasons.DATABASE_NOT_MIGRATED, _message(exc))
    if isinstance(exc, InvalidDatabaseURL):
        # Fixed by correcting the Secret, which is no spec change: retried.
        return Verdict("temporary", reasons.INVALID_DATABASE_URL, _message(exc))
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        if status in _API_PERMANENT:
            return Verdict("permanent", reasons.API_REJECTED, _api_text(exc))
        if status in (401, 403):  # RBAC or an expired token: an admin fixes it, not the spec
            return Verdict("temporary", reasons.API_FORBIDDEN, _api_text(exc))
        if status in _API_TEMPORARY or status >= 500 or status == 0:
            return Verdict("temporary", reasons.API_ERROR, _api_text(exc))
        return Verdict("unexpected", reasons.UNEXPECTED, _api_text(exc))
    if isinstance(exc, DatabaseUnavailable):
        return Verdict("temporary", reasons.DATABASE_UNAVAILABLE, _message(exc))
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        if is_connection_error(exc) or sqlstate[:2] in _PG_TEMPORARY_CLASSES:
            return Verdict("temporary", reasons.DATABASE_UNAVAILABLE, _message(exc))
        return Verdict("unexpected", reasons.DATABASE_ERROR, _message(exc))
    if isinstance(exc, asyncpg.InterfaceError) and is_connection_error(exc):
        return Verdict("temporary", reasons.DATABASE_UNAVAILABLE, _message(exc))
    if isinstance(exc, TimeoutError):
        return Verdict("temporary", reasons.TIMEOUT, _message(exc))
    if isinstance(exc, aiohttp.ClientError | OSError):
        # The API server unreachable (aiohttp's connection errors are OSErrors too);
        # a lost database connection was classified above.
        return Verdict("temporary", reasons.API_UNAVAILABLE, _message(exc))
    return Verdict("unexpected", reasons.UNEXPECTED, f"{type(exc).__name__}: {_message(exc)}")


def unexpected_event_message(kind: str, verdict: Verdict) -> str:
    """The Warning Event's text for an unexpected error: what happened, that the
    operator keeps retrying, and where the details are."""
    return (
        f"reconciling this {kind} failed unexpectedly ({verdict.message}); the operator"
        " retries with backoff. The operator's log has the traceback; if this"
        " persists, report it with that log"
    )[:1000]
