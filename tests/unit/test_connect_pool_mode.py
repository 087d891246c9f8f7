"""DATABASE_POOL_MODE: what create_pool asks of asyncpg in each mode, and that the
operator hands the mode on to its Job pods. Against a real PgBouncer:
tests/integration/test_pgbouncer.py."""

from __future__ import annotations

from typing import Any

import pytest
from rap_operator import manifests
from rap_operator.config import OperatorConfig
from rap_operator.kinds import ANALYSIS

from analyzer_runtime.ledger import connect
from analyzer_runtime.ledger.connect import (
    CLIENT_CHECK_SETTINGS,
    POOL_MODE_ENV,
    InvalidDatabaseURL,
    InvalidPoolMode,
    create_pool,
    pool_mode,
    pool_options,
)


def test_the_mode_is_session_unless_the_environment_says_transaction() -> None:
    assert pool_mode({}) == "session"
    assert pool_mode({POOL_MODE_ENV: ""}) == "session"
    assert pool_mode({POOL_MODE_ENV: "transaction"}) == "transaction"
    assert pool_mode({POOL_MODE_ENV: " Transaction "}) == "transaction"
    assert pool_mode({POOL_MODE_ENV: "session"}) == "session"


def test_an_unknown_mode_is_refused_naming_the_variable_and_the_choices() -> None:
    with pytest.raises(InvalidPoolMode) as err:
        pool_mode({POOL_MODE_ENV: "statement"})
    msg = str(err.value)
    assert POOL_MODE_ENV in msg and "'statement'" in msg
    assert "session" in msg and "transaction" in msg
    # The CLI and the operator handle it like a bad URL: a configuration error.
    assert isinstance(err.value, InvalidDatabaseURL)


def test_session_mode_sends_the_client_check_and_keeps_the_statement_cache() -> None:
    opts = pool_options("session", {"timeout": 5, "server_settings": {"application_name": "x"}})
    assert opts["server_settings"] == {**CLIENT_CHECK_SETTINGS, "application_name": "x"}
    assert "statement_cache_size" not in opts and "reset" not in opts
    assert opts["timeout"] == 5


def test_transaction_mode_has_no_statement_cache_startup_settings_or_reset_query() -> None:
    opts = pool_options("transaction", {"timeout": 5})
    assert opts["statement_cache_size"] == 0
    # PgBouncer refuses startup parameters it does not track.
    assert opts["server_settings"] == {}
    assert opts["reset"] is connect._keep_session
    assert opts["timeout"] == 5
    # What a caller asks for explicitly stays (application_name is one PgBouncer tracks).
    mine = pool_options("transaction", {"server_settings": {"application_name": "x"}})
    assert mine["server_settings"] == {"application_name": "x"}


async def test_create_pool_refuses_a_bad_mode_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(POOL_MODE_ENV, "bogus")
    with pytest.raises(InvalidPoolMode, match=POOL_MODE_ENV):
        # Port 9 (discard): nothing would answer; the mode is checked first.
        await create_pool("postgresql://u:pw@127.0.0.1:9/db", timeout=1)


def _pod_env(environ: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "demo", "namespace": "rap", "uid": "u-1", "generation": 1},
        "spec": {"analyzer": "algorithmic", "shards": 2, **spec},
    }
    job = manifests.kind_job(body, OperatorConfig.from_env(environ or {}), ANALYSIS)
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in c["env"]}


def test_the_operator_hands_its_pool_mode_to_the_job_pods() -> None:
    # The operator's environment reaches manifests.py through OperatorConfig.from_env.
    assert POOL_MODE_ENV not in _pod_env()
    env = _pod_env({POOL_MODE_ENV: "transaction"})
    assert env[POOL_MODE_ENV] == {"name": POOL_MODE_ENV, "value": "transaction"}
    # The URL itself still comes from the Secret, never inline.
    assert "valueFrom" in env["DATABASE_URL"] and "value" not in env["DATABASE_URL"]
