"""Least-privilege database roles (`rap-analyzer db roles`).

Three login roles, none of them superuser:

  owner    owns the schema objects and applies the migrations (CREATE on the schema,
           TEMPORARY for the admin tools' staging tables);
  runtime  what the operator, the shard pods and the ledger gc use: SELECT, INSERT,
           UPDATE, DELETE on the owner's tables (SELECT only on schema_migrations),
           the owner's sequences; no DDL, no TEMPORARY;
  search   the search API: SELECT on the tables search reads, and every transaction
           read-only (default_transaction_read_only).

`apply` runs as a superuser (the in-cluster Postgres's bootstrap user, or an external
database's admin). It is idempotent, so the chart runs it on every install and
upgrade. Objects the migrations created before the roles existed (owned by whoever
applied them, the chart's superuser up to 0.1.0) are given to the owner one by one:
REASSIGN OWNED BY the bootstrap superuser is refused (it owns the system catalogs).

Passwords go to the server as SCRAM-SHA-256 verifiers computed here, never in clear,
so a server that logs statements does not log them either; nothing here prints them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import asyncpg

from analyzer_runtime.ledger import migrate as migrations

# Built-in roles that reach outside the database (programs, server files) or around
# the grants (all data): none of ours may be a member.
FORBIDDEN_MEMBERSHIPS = (
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_read_all_data",
    "pg_write_all_data",
)
SEARCH_TABLES = ("tracks", "track_embeddings", "schema_migrations")
# Readable, never written, by the runtime role: only migrations record versions.
RUNTIME_READ_ONLY_TABLES = ("schema_migrations",)
SCHEMA = "public"
SCRAM_ITERATIONS = 4096

OWNER_ROLE_ENV = "RAP_DB_OWNER_ROLE"
RUNTIME_ROLE_ENV = "RAP_DB_RUNTIME_ROLE"
SEARCH_ROLE_ENV = "RAP_DB_SEARCH_ROLE"
OWNER_PASSWORD_ENV = "RAP_DB_OWNER_PASSWORD"
RUNTIME_PASSWORD_ENV = "RAP_DB_RUNTIME_PASSWORD"
SEARCH_PASSWORD_ENV = "RAP_DB_SEARCH_PASSWORD"


class RolesError(RuntimeError):
    """The roles cannot be set up as asked (not a superuser, a name clash)."""


@dataclass(frozen=True)
class Roles:
    owner: str = "rap_owner"
    runtime: str = "rap_runtime"
    search: str = "rap_search"
    # Role name -> password; a role without one keeps its password (or has none).
    passwords: Mapping[str, str] = field(default_factory=dict, repr=False)

    def names(self) -> tuple[str, str, str]:
        return (self.owner, self.runtime, self.search)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Roles:
        env = os.environ if env is None else env
        owner = env.get(OWNER_ROLE_ENV) or cls.owner
        runtime = env.get(RUNTIME_ROLE_ENV) or cls.runtime
        search = env.get(SEARCH_ROLE_ENV) or cls.search
        passwords = {
            name: env[var]
            for name, var in (
                (owner, OWNER_PASSWORD_ENV),
                (runtime, RUNTIME_PASSWORD_ENV),
                (search, SEARCH_PASSWORD_ENV),
            )
            if env.get(var)
        }
        return cls(owner, runtime, search, passwords)

    def __post_init__(self) -> None:
        if len(set(self.names())) != 3:
            raise RolesError(f"the owner, runtime and search roles must differ: {self.names()}")
        for name in self.names():
            if not name or len(name.encode()) > 63:
                raise RolesError(f"{name!r} is not a usable role name (1-63 bytes)")


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal (standard_conforming_strings, the default since 9.1)."""
    return "'" + text.replace("'", "''") + "'"


def scram_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """The SCRAM-SHA-256 verifier Postgres stores for `password` (what libpq's
    PQencryptPasswordConn sends): the server never sees the password itself.
    SASLprep is approximated by NFKC, which is exact for ASCII passwords (the chart
    generates alphanumeric ones)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac(
        "sha256", unicodedata.normalize("NFKC", password).encode(), salt, iterations
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"


def role_statements(
    roles: Roles, existing: set[str], memberships: Mapping[str, set[str]], database: str
) -> list[str]:
    """Create or correct the three roles and their database-level rights.

    `existing`: the role names already in the cluster; `memberships`: role -> the
    built-in roles of FORBIDDEN_MEMBERSHIPS it is a member of (revoked)."""
    out: list[str] = []
    for name in roles.names():
        verb = "ALTER" if name in existing else "CREATE"
        stmt = f"{verb} ROLE {ident(name)} WITH {ROLE_ATTRIBUTES}"
        if (password := roles.passwords.get(name)) is not None:
            stmt += f" PASSWORD {literal(scram_verifier(password))}"
        out.append(stmt)
        for builtin in sorted(memberships.get(name, set())):
            out.append(f"REVOKE {ident(builtin)} FROM {ident(name)}")
    db = ident(database)
    out += [
        # Statements of the search role's sessions are read-only unless a transaction
        # asks otherwise, which its grants (SELECT only) would refuse anyway.
        f"ALTER ROLE {ident(roles.search)} SET default_transaction_read_only = on",
        # Nobody but the owner creates objects: PUBLIC's CREATE on the schema (before
        # Postgres 15 the default) and TEMPORARY on the database go.
        f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM PUBLIC",
        f"REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {db} TO {', '.join(ident(n) for n in roles.names())}",
        f"GRANT TEMPORARY ON DATABASE {db} TO {ident(roles.owner)}",
        f"GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO {ident(roles.owner)}",
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {ident(roles.runtime)}, {ident(roles.search)}",
        # Tables and sequences later migrations create get the runtime's grants.
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {ident(roles.owner)} IN SCHEMA {SCHEMA}"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ident(roles.runtime)}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {ident(roles.owner)} IN SCHEMA {SCHEMA}"
        f" GRANT USAGE, SELECT ON SEQUENCES TO {ident(roles.runtime)}",
    ]
    return out


@dataclass(frozen=True)
class DbObject:
    kind: str  # TABLE, SEQUENCE, VIEW, MATERIALIZED VIEW, FUNCTION
    name: str  # qualified and quoted; a function with its argument types


def reown_statements(objects: list[DbObject], owner: str) -> list[str]:
    return [f"ALTER {o.kind} {o.name} OWNER TO {ident(owner)}" for o in objects]


def grant_statements(roles: Roles, tables: list[str], sequences: list[str]) -> list[str]:
    """The runtime's and search's grants on the owner's `tables` and `sequences`
    (unqualified names in SCHEMA)."""
    runtime, search = ident(roles.runtime), ident(roles.search)
    # Grants beyond these (by hand, or by an older setup) go first: a superuser's
    # REVOKE acts for each table's owner.
    out = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM {search}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {SCHEMA} FROM {runtime}",
    ]
    for t in sorted(tables):
        q = f"{SCHEMA}.{ident(t)}"
        if t in RUNTIME_READ_ONLY_TABLES:
            out.append(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {q} FROM {runtime}")
            out.append(f"GRANT SELECT ON {q} TO {runtime}")
        else:
            out.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {q} TO {runtime}")
        if t in SEARCH_TABLES:
            out.append(f"GRANT SELECT ON {q} TO {search}")
    for s in sorted(sequences):
        out.append(f"GRANT USAGE, SELECT ON SEQUENCE {SCHEMA}.{ident(s)} TO {runtime}")
    return out


# Objects of SCHEMA owned by `$1` (the role that applied the migrations), extension
# members excluded (pgvector's functions and types stay with the extension's owner);
# sequences owned by a table column move with their table.
_FOREIGN_OWNED = """
SELECT kind, name FROM (
  SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                        WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind,
         format('%I.%I', n.nspname, c.relname) AS name, c.oid AS oid, 'pg_class'::regclass AS cls
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = $2 AND c.relowner = $1::regrole
     AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
     AND NOT (c.relkind = 'S' AND EXISTS (
           SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
              AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
  UNION ALL
  SELECT 'FUNCTION', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
         p.oid, 'pg_proc'::regclass
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = $2 AND p.proowner = $1::regrole
) o
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d
                   WHERE d.classid = o.cls AND d.objid = o.oid AND d.deptype = 'e')
ORDER BY kind, name
"""


async def _owned_by_migrator(conn: asyncpg.Connection, owner: str) -> list[DbObject]:
    """The objects to give to the owner: those of the role that owns
    schema_migrations, when that is another role."""
    migrator = await conn.fetchval(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass($1)",
        f"{SCHEMA}.schema_migrations",
    )
    if migrator is None or migrator == owner:
        return []
    rows = await conn.fetch(_FOREIGN_OWNED, ident(migrator), SCHEMA)
    return [DbObject(r["kind"], r["name"]) for r in rows]


async def _owners_relations(conn: asyncpg.Connection, owner: str) -> tuple[list[str], list[str]]:
    rows = await conn.fetch(
        """SELECT c.relname, c.relkind FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relowner = $2::regrole
              AND c.relkind IN ('r', 'p', 'v', 'm', 'S')""",
        SCHEMA,
        ident(owner),
    )
    tables = [r["relname"] for r in rows if r["relkind"] != "S"]
    sequences = [r["relname"] for r in rows if r["relkind"] == "S"]
    return tables, sequences


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    reowned: list[str] = field(default_factory=list)
    migrated: list[str] = field(default_factory=list)
    # Why the migrations were not applied (a legacy schema: `db adopt` first), if so.
    not_migrated: str | None = None


async def apply(
    conn: asyncpg.Connection,
    roles: Roles,
    *,
    migrate: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> Report:
    """Create or correct the roles, give the migrator's objects to the owner, apply
    the migrations as the owner (`migrate`), then grant on what exists. `conn` must
    be a superuser's session on a direct connection (SET ROLE for the migrations)."""
    if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        raise RolesError(
            "`db roles` needs a superuser's connection (it creates roles, changes owners"
            " and creates the vector extension): set DATABASE_URL to the admin's URL"
        )
    report = Report()
    database = await conn.fetchval("SELECT current_database()")
    async with conn.transaction():
        # One setup at a time (two hooks at once), and none while migrations run.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", migrations.LOCK_KEY)
        names = list(roles.names())
        rows = await conn.fetch(
            "SELECT rolname, rolsuper FROM pg_roles WHERE rolname = ANY($1::text[])", names
        )
        existing = {r["rolname"] for r in rows}
        if superusers := sorted(r["rolname"] for r in rows if r["rolsuper"]):
            # Demoting a superuser (the bootstrap user, the previous release's `rap`)
            # would lock out whoever still uses it: a name clash, never fixed silently.
            raise RolesError(
                f"role(s) {', '.join(superusers)} exist and are superusers; pick other"
                " names for the owner/runtime/search roles"
            )
        member_rows = await conn.fetch(
            """SELECT m.rolname AS member, r.rolname AS role FROM pg_auth_members a
                 JOIN pg_roles m ON m.oid = a.member JOIN pg_roles r ON r.oid = a.roleid
                WHERE m.rolname = ANY($1::text[]) AND r.rolname = ANY($2::text[])""",
            names,
            list(FORBIDDEN_MEMBERSHIPS),
        )
        memberships: dict[str, set[str]] = {}
        for r in member_rows:
            memberships.setdefault(r["member"], set()).add(r["role"])
        for stmt in role_statements(roles, existing, memberships, database):
            await conn.execute(stmt)
        report.created = [n for n in names if n not in existing]
        report.updated = [n for n in names if n in existing]
        for n in report.created:
            log(f"created role {n}")
        # The migrations' first statement; a non-superuser owner could not run it
        # unless the installed pgvector marks itself trusted.
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        objects = await _owned_by_migrator(conn, roles.owner)
        for stmt in reown_statements(objects, roles.owner):
            await conn.execute(stmt)
        report.reowned = [f"{o.kind.lower()} {o.name}" for o in objects]
        if objects:
            log(f"gave {len(objects)} object(s) to {roles.owner}")
    if migrate:
        await conn.execute(f"SET ROLE {ident(roles.owner)}")
        try:
            applied = await migrations.migrate(conn)
            report.migrated = [f"{m.version:04d}_{m.name}" for m in applied]
        except migrations.LegacySchema as exc:
            report.not_migrated = str(exc)
        finally:
            await conn.execute("RESET ROLE")
    async with conn.transaction():
        tables, sequences = await _owners_relations(conn, roles.owner)
        for stmt in grant_statements(roles, tables, sequences):
            await conn.execute(stmt)
    return report
