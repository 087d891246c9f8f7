"""Least-privilege database roles (issue 23): `db roles` on a real Postgres, then each
role doing its real work (a shard run as runtime, a search as search) and being
refused what it has no business with."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import numpy as np
import pytest
from rap_operator import database

from analyzer_runtime import search
from analyzer_runtime.db import roles as db_roles
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.connect import POOL_MODE_ENV, create_pool
from analyzer_runtime.ledger.migrate import available
from analyzer_runtime.ledger.planner import Selection
from analyzer_runtime.seed import seed

_n = itertools.count()
ANALYZER = "algorithmic"
MODEL = "test-model"


def _as(url: str, role: str) -> str:
    """The same database as `url` (pgserver's postgres URL) logged in as `role`; the
    embedded server trusts its unix socket, so no password is needed here."""
    assert url.startswith("postgresql://postgres:@"), url
    return url.replace("postgresql://postgres:@", f"postgresql://{role}:@", 1)


@dataclass
class Setup:
    admin: str
    roles: db_roles.Roles

    @property
    def owner(self) -> str:
        return _as(self.admin, self.roles.owner)

    @property
    def runtime(self) -> str:
        return _as(self.admin, self.roles.runtime)

    @property
    def search(self) -> str:
        return _as(self.admin, self.roles.search)


def _roles() -> db_roles.Roles:
    # Roles are cluster-wide: names of their own per test, so tests never share grants.
    k = f"{os.getpid()}_{next(_n)}"
    return db_roles.Roles(
        f"own_{k}", f"run_{k}", f"srch_{k}", passwords={f"run_{k}": "not-logged-here"}
    )


async def _apply(url: str, roles: db_roles.Roles, **kw: object) -> db_roles.Report:
    conn = await asyncpg.connect(url)
    try:
        # the keyword options pass through untyped (**kw: object)
        return await db_roles.apply(conn, roles, **kw)  # type: ignore[arg-type]
    finally:
        await conn.close()


@pytest.fixture
def empty_url(make_empty_db: Callable[[], str]) -> str:
    return make_empty_db()


@pytest.fixture
async def fresh(empty_url: str) -> AsyncIterator[Setup]:
    """A new, empty database set up by `db roles` (which migrates it as the owner)."""
    s = Setup(empty_url, _roles())
    report = await _apply(s.admin, s.roles)
    assert report.created == list(s.roles.names())
    assert len(report.migrated) == len(available())
    yield s


async def _owners(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT c.relname, pg_get_userbyid(c.relowner) AS owner FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v', 'm')"""
        )
        return {r["relname"]: r["owner"] for r in rows}
    finally:
        await conn.close()


async def test_roles_are_not_superusers_and_hold_no_server_roles(fresh: Setup) -> None:
    conn = await asyncpg.connect(fresh.admin)
    try:
        rows = await conn.fetch(
            """SELECT a.rolname, a.rolsuper, a.rolcreaterole, a.rolcreatedb, a.rolbypassrls,
                      a.rolpassword, r.rolconfig
                 FROM pg_authid a JOIN pg_roles r ON r.oid = a.oid
                WHERE a.rolname = ANY($1::text[])""",
            list(fresh.roles.names()),
        )
        memberships = await conn.fetchval(
            """SELECT count(*) FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member
                WHERE m.rolname = ANY($1::text[])""",
            list(fresh.roles.names()),
        )
    finally:
        await conn.close()
    by_name = {r["rolname"]: r for r in rows}
    assert set(by_name) == set(fresh.roles.names())
    for r in rows:
        assert not (r["rolsuper"] or r["rolcreaterole"] or r["rolcreatedb"] or r["rolbypassrls"])
    assert memberships == 0
    # The password arrived as a SCRAM verifier (never in clear); unset ones stay unset.
    assert by_name[fresh.roles.runtime]["rolpassword"].startswith("SCRAM-SHA-256$4096:")
    assert by_name[fresh.roles.owner]["rolpassword"] is None
    assert "default_transaction_read_only=on" in by_name[fresh.roles.search]["rolconfig"]
    # The owner owns every table and sequence the migrations made.
    owners = await _owners(fresh.admin)
    assert owners and set(owners.values()) == {fresh.roles.owner}


async def _plan_on(conn: asyncpg.Connection, uid: str) -> shard_ledger.Run:
    from analyzer_runtime.analyzers import registry

    a = registry.create(ANALYZER)
    res = await planner.plan_analysis(
        conn, uid=uid, name=uid, namespace=None,
        spec={"analyzer": ANALYZER, "shards": 1, "batchSize": 25},
        selection=Selection(), shards=1,
        analyzer_type=a.analyzer_type, model_version=a.version,
    )  # fmt: skip
    return res.run


async def _plan(url: str, uid: str) -> shard_ledger.Run:
    # The operator plans with its DATABASE_URL: the runtime role.
    conn = await asyncpg.connect(url)
    try:
        return await _plan_on(conn, uid)
    finally:
        await conn.close()


async def test_a_shard_runs_as_runtime_which_cannot_ddl_or_escape(fresh: Setup) -> None:
    # Seeding is an admin tool (a TEMP staging table): the owner's job.
    owner_pool = await create_pool(fresh.owner, max_size=1)
    try:
        await seed(owner_pool, 60)
    finally:
        await owner_pool.close()
    run = await _plan(fresh.runtime, "roles-run")
    assert run.total == 60
    shard = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "analyzer_runtime", "analyze", "--run-id", run.uid, "--shard", "0"],
        env={**os.environ, "DATABASE_URL": fresh.runtime, "METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shard.returncode == 0, shard.stderr
    conn = await asyncpg.connect(fresh.runtime)
    try:
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == 60
        # What a shard pod's role may not do.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE stolen (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TEMP TABLE stolen (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("COPY tracks (title) FROM PROGRAM 'id'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("COPY (SELECT 1) TO '/tmp/rap-roles-test'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'x')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("ALTER TABLE tracks ADD COLUMN x int")
    finally:
        await conn.close()


async def test_runtime_cannot_read_another_roles_table(fresh: Setup) -> None:
    other = f"other_{os.getpid()}_{next(_n)}"
    admin = await asyncpg.connect(fresh.admin)
    try:
        await admin.execute(f'CREATE ROLE "{other}"')
        await admin.execute(
            f'CREATE TABLE team_secrets (v text); ALTER TABLE team_secrets OWNER TO "{other}"'
        )
        await admin.execute("INSERT INTO team_secrets VALUES ('s3cret')")
    finally:
        await admin.close()
    # A second `db roles` does not hand the foreign table to anyone either.
    await _apply(fresh.admin, fresh.roles)
    for url in (fresh.runtime, fresh.search):
        conn = await asyncpg.connect(url)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM team_secrets")
        finally:
            await conn.close()


async def test_search_reads_but_cannot_write(fresh: Setup) -> None:
    owner = await asyncpg.connect(fresh.owner)
    try:
        from pgvector.asyncpg import register_vector

        await register_vector(owner)
        ids = [
            await owner.fetchval(
                "INSERT INTO tracks (title, artist, lyrics) VALUES ($1, 'a', 'words') RETURNING id",
                f"t{i}",
            )
            for i in range(3)
        ]
        rng = np.random.default_rng(1)
        for i in ids:
            v = rng.normal(size=384).astype(np.float32)
            await owner.execute(
                "INSERT INTO track_embeddings (track_id, model, embedding) VALUES ($1, $2, $3)",
                i,
                MODEL,
                v / np.linalg.norm(v),
            )
    finally:
        await owner.close()
    pool = await create_pool(fresh.search, max_size=1)
    try:
        async with pool.acquire() as conn:
            result = await search.similar(conn, ids[0], MODEL, limit=5)
            assert [h.track_id for h in result.hits] and ids[0] not in [
                h.track_id for h in result.hits
            ]
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute("UPDATE tracks SET title = 'x'")
            # Even a transaction that asks to write has no grant to do it with.
            async with conn.transaction(readonly=False):
                await conn.execute("SET TRANSACTION READ WRITE")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute("INSERT INTO tracks (title, artist) VALUES ('x', 'y')")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM runs")
    finally:
        await pool.close()


async def test_superuser_migrated_database_is_handed_over_idempotently(db_url: str) -> None:
    # db_url was migrated by the embedded server's bootstrap superuser `postgres`, as
    # the chart's 0.1.0 did with its `rap` superuser.
    assert set((await _owners(db_url)).values()) == {"postgres"}
    roles = _roles()
    first = await _apply(db_url, roles)
    assert first.reowned and not first.migrated
    assert any(o.startswith("function ") for o in first.reowned)
    assert set((await _owners(db_url)).values()) == {roles.owner}
    second = await _apply(db_url, roles)
    assert second.created == [] and second.updated == list(roles.names())
    assert second.reowned == []
    conn = await asyncpg.connect(db_url)
    try:
        # pgvector's own objects stay the extension's.
        assert (
            await conn.fetchval(
                "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'vector_in'"
            )
            == "postgres"
        )
    finally:
        await conn.close()
    run = await asyncpg.connect(_as(db_url, roles.runtime))
    try:
        tid = await run.fetchval(
            "INSERT INTO tracks (title, artist) VALUES ('t', 'a') RETURNING id"
        )
        assert await run.fetchval("SELECT title FROM tracks WHERE id = $1", tid) == "t"
    finally:
        await run.close()


async def test_a_later_migrations_table_is_usable_by_runtime(fresh: Setup) -> None:
    owner = await asyncpg.connect(fresh.owner)
    try:
        await owner.execute("CREATE TABLE later_feature (id bigserial PRIMARY KEY, v text)")
    finally:
        await owner.close()
    run = await asyncpg.connect(fresh.runtime)
    try:
        await run.execute("INSERT INTO later_feature (v) VALUES ('ok')")
        assert await run.fetchval("SELECT v FROM later_feature") == "ok"
    finally:
        await run.close()


async def test_operator_migrates_as_owner_and_operates_as_runtime(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Setup(empty_url, _roles())
    report = await _apply(s.admin, s.roles, migrate=False)
    assert report.migrated == []
    monkeypatch.setenv("DATABASE_URL", s.runtime)
    monkeypatch.delenv(database.MIGRATION_URL_ENV, raising=False)
    try:
        # The runtime role alone cannot create the schema: the run is told, not broken.
        with pytest.raises(database.DatabaseUnavailable, match="permission denied"):
            await database.pool(s.runtime)
        monkeypatch.setenv(database.MIGRATION_URL_ENV, s.owner)
        p = await database.pool(s.runtime)
        async with p.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(available())
            assert await conn.fetchval("SELECT current_user") == s.roles.runtime
    finally:
        await database.close_all()
    assert set((await _owners(s.admin)).values()) == {s.roles.owner}


async def test_operator_waits_for_roles_that_do_not_exist_yet(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = _as(db_url, f"nobody_{os.getpid()}_{next(_n)}")
    monkeypatch.setenv("DATABASE_URL", missing)
    try:
        with pytest.raises(database.DatabaseUnavailable, match="db-roles hook"):
            await database.pool(missing)
    finally:
        await database.close_all()


async def test_names_that_are_superusers_are_refused(db_url: str) -> None:
    with pytest.raises(db_roles.RolesError, match="superuser"):
        await _apply(db_url, db_roles.Roles("postgres", "r_x", "s_x"))


def test_chart_init_script_then_the_roles_job_as_it_runs(empty_url: str, tmp_path: Path) -> None:
    """The chart's Postgres init script (a new volume) with a real psql, then the
    db-roles Job's command line (`db roles --wait ... --skip-unknown-host`) with the
    superuser's password-less URL: the login roles first, their rights second; the
    passwords never in the command's output."""
    from pgserver import postgres_server
    from rap_devtools.helm import only, render_chart

    from tests.integration.clirun import cli

    roles = _roles()
    init = only(render_chart(), "ConfigMap", "rap-analyzer-postgres-init")["data"]
    (script,) = init.values()
    (tmp_path / "init.sh").write_text(script)
    parts = urlsplit(empty_url)
    socket_dir = parse_qs(parts.query)["host"][0]
    passwords = {"OWNER": "o-pw'1", "RUNTIME": 'r-pw"2', "SEARCH": "s pw 3"}
    role_env = {
        **{f"RAP_DB_{r}_ROLE": getattr(roles, r.lower()) for r in passwords},
        **{f"RAP_DB_{r}_PASSWORD": pw for r, pw in passwords.items()},
    }
    psql_dir = Path(postgres_server.__file__).parent / "pginstall" / "bin"
    res = subprocess.run(
        ["sh", str(tmp_path / "init.sh")],
        env={"PATH": f"{psql_dir}:{os.environ['PATH']}", "PGHOST": socket_dir,
             "POSTGRES_USER": "postgres", "POSTGRES_DB": parts.path.lstrip("/"), **role_env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr

    async def logins() -> dict[str, bool]:
        conn = await asyncpg.connect(empty_url)
        try:
            rows = await conn.fetch(
                "SELECT rolname, rolcanlogin, rolpassword IS NOT NULL AS pw FROM pg_authid"
                " WHERE rolname = ANY($1::text[])",
                list(roles.names()),
            )
        finally:
            await conn.close()
        return {r["rolname"]: r["rolcanlogin"] and r["pw"] for r in rows}

    assert asyncio.run(logins()) == dict.fromkeys(roles.names(), True)

    res = cli(
        "db", "roles", "--wait", "30", "--skip-unknown-host",
        db_url=empty_url.replace("postgresql://postgres:@", "postgresql://postgres@"),
        PGPASSWORD="unused-on-the-socket", **role_env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"roles ready: owner {roles.owner}" in res.stdout
    assert not any(pw in res.stdout + res.stderr for pw in passwords.values())
    assert set(asyncio.run(_owners(empty_url)).values()) == {roles.owner}


async def test_a_shard_runs_as_runtime_through_pgbouncer(
    fresh: Setup, pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PgBouncer (transaction pooling, as the chart's) with the runtime role in its
    auth file: the client authenticates with the role's password, and the server
    connection is the runtime role's too, with its limits."""
    from rap_devtools.pgbouncer import pgbouncer

    owner_pool = await create_pool(fresh.owner, max_size=1)
    try:
        await seed(owner_pool, 30)
    finally:
        await owner_pool.close()
    password = "runtime-through-the-pooler"
    database_name = urlsplit(fresh.admin).path.lstrip("/")
    with pgbouncer(pg_server.get_uri(), users={fresh.roles.runtime: password}) as bouncer:
        url = bouncer.url(database_name, fresh.roles.runtime, password)
        monkeypatch.setenv(POOL_MODE_ENV, "transaction")
        pool = await create_pool(url, max_size=1)
        try:
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT current_user") == fresh.roles.runtime
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute("CREATE TABLE stolen (x int)")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute("COPY tracks (title) FROM PROGRAM 'id'")
                run = await _plan_on(conn, "roles-pooled")
            shard = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "analyzer_runtime", "analyze", "--run-id", run.uid,
                 "--shard", "0"],
                env={**os.environ, "DATABASE_URL": url, POOL_MODE_ENV: "transaction",
                     "METRICS_PORT": "0"},
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert shard.returncode == 0, shard.stderr
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM analysis_results") == 30
        finally:
            await pool.close()
        # A wrong password is refused by PgBouncer itself.
        with pytest.raises(asyncpg.PostgresError, match="authentication failed"):
            await asyncpg.connect(
                bouncer.url(database_name, fresh.roles.runtime, "wrong"), statement_cache_size=0
            )


async def test_stray_grants_are_taken_back(fresh: Setup) -> None:
    """A write grant given to the search role by hand (or TRUNCATE to the runtime
    role) is gone after the next `db roles` (every upgrade runs it)."""
    admin = await asyncpg.connect(fresh.admin)
    try:
        await admin.execute(f'GRANT INSERT, UPDATE ON tracks TO "{fresh.roles.search}"')
        await admin.execute(f'GRANT TRUNCATE ON run_items TO "{fresh.roles.runtime}"')
        await admin.execute(f'GRANT SELECT ON runs TO "{fresh.roles.search}"')
        await admin.execute(f'GRANT pg_execute_server_program TO "{fresh.roles.runtime}"')
    finally:
        await admin.close()
    await _apply(fresh.admin, fresh.roles)
    conn = await asyncpg.connect(fresh.search)
    try:
        async with conn.transaction(readonly=False):
            await conn.execute("SET TRANSACTION READ WRITE")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("INSERT INTO tracks (title, artist) VALUES ('x', 'y')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM runs")
        assert await conn.fetchval("SELECT count(*) FROM tracks") == 0
    finally:
        await conn.close()
    conn = await asyncpg.connect(fresh.runtime)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE run_items")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("COPY tracks (title) FROM PROGRAM 'id'")
    finally:
        await conn.close()
