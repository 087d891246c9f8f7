"""`rap-analyzer db migrate --wait N` (examples/seed-job.yaml): a Job applied right
after an install may start before the database's Service name resolves or its server
answers; it keeps trying for N seconds instead of failing at once, then says why."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.clirun import cli

# .invalid never resolves (RFC 6761), like a Service that does not exist yet.
UNRESOLVED = "postgresql://rap:pw@rap-analyzer-postgres.invalid:5432/rap"


def test_an_unresolvable_host_is_retried_for_the_wait_then_named() -> None:
    started = time.monotonic()
    r = cli("db", "migrate", "--wait", "4", db_url=UNRESOLVED)
    waited = time.monotonic() - started
    assert r.returncode == 3, r.stderr  # EXIT_DB: the database is unavailable
    assert "rap-analyzer-postgres.invalid" in r.stderr and "does not resolve" in r.stderr
    assert "pw@" not in r.stderr
    # It kept trying rather than giving up on the first failure (a lower bound only).
    assert waited >= 4


def test_without_wait_it_fails_on_the_first_attempt() -> None:
    r = cli("db", "migrate", db_url=UNRESOLVED)
    assert r.returncode == 3, r.stderr
    assert "rap-analyzer-postgres.invalid" in r.stderr


def test_a_reachable_database_is_migrated_with_wait(make_empty_db: Callable[[], str]) -> None:
    url = make_empty_db()
    r = cli("db", "migrate", "--wait", "30", db_url=url)
    assert r.returncode == 0, r.stderr
    assert "applied 0001_corpus" in r.stdout
    again = cli("db", "migrate", "--wait", "30", db_url=url)
    assert again.returncode == 0 and "schema is up to date" in again.stdout
