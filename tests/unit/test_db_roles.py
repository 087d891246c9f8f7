"""The pure parts of `db roles` (analyzer_runtime/db/roles.py): the SCRAM verifier
against RFC 7677's test vector, quoting, and the statements built. The roles in a real
Postgres: tests/integration/test_db_roles.py."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer_runtime.db import roles as r

# RFC 7677 section 3: user "user", password "pencil".
SALT = "W22ZaJ0SNY7soEsUEjb6gQ=="
NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
AUTH_MESSAGE = (
    f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={NONCE},s={SALT},i=4096,c=biws,r={NONCE}"
).encode()
CLIENT_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_verifier_matches_rfc_7677() -> None:
    v = r.scram_verifier("pencil", salt=base64.b64decode(SALT))
    assert v.startswith(f"SCRAM-SHA-256$4096:{SALT}$")
    stored, server = (base64.b64decode(k) for k in v.split("$")[2].split(":"))
    # The server's signature the RFC's exchange expects ...
    assert base64.b64encode(hmac.new(server, AUTH_MESSAGE, "sha256").digest()).decode() == (
        SERVER_SIGNATURE
    )
    # ... and the RFC client's proof passes the server's check against StoredKey.
    signature = hmac.new(stored, AUTH_MESSAGE, "sha256").digest()
    client_key = bytes(
        a ^ b for a, b in zip(base64.b64decode(CLIENT_PROOF), signature, strict=True)
    )
    assert hashlib.sha256(client_key).digest() == stored
    # A fresh salt each time: the same password never gives the same verifier.
    assert r.scram_verifier("pencil") != r.scram_verifier("pencil")


def test_role_statements_never_carry_the_password() -> None:
    roles = r.Roles("o", "ru", "s", passwords={"ru": "hunter2-secret"})
    sql = r.role_statements(
        roles, existing={"o"}, memberships={"s": {"pg_read_server_files"}}, database="rap"
    )
    joined = "\n".join(sql)
    assert "hunter2-secret" not in joined
    assert 'ALTER ROLE "o" WITH LOGIN NOSUPERUSER' in joined
    assert (
        'CREATE ROLE "ru" WITH LOGIN NOSUPERUSER' in joined and "PASSWORD 'SCRAM-SHA-256$" in joined
    )
    assert 'REVOKE "pg_read_server_files" FROM "s"' in sql
    assert 'ALTER ROLE "s" SET default_transaction_read_only = on' in sql
    assert 'REVOKE TEMPORARY ON DATABASE "rap" FROM PUBLIC' in sql
    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC" in sql
    # Only the owner may create objects, or temporary tables.
    assert [s for s in sql if s.startswith("GRANT") and ("CREATE" in s or "TEMP" in s)] == [
        'GRANT TEMPORARY ON DATABASE "rap" TO "o"',
        'GRANT USAGE, CREATE ON SCHEMA public TO "o"',
    ]
    # A role without a password keeps the one it has.
    assert not any(s.startswith('ALTER ROLE "o"') and "PASSWORD" in s for s in sql)


def test_grants_keep_schema_migrations_read_only_and_search_to_its_tables() -> None:
    roles = r.Roles("o", "ru", "s")
    sql = r.grant_statements(roles, ["tracks", "runs", "schema_migrations"], ["tracks_id_seq"])
    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON public."runs" TO "ru"' in sql
    assert 'GRANT SELECT ON public."schema_migrations" TO "ru"' in sql
    assert 'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public."schema_migrations" FROM "ru"' in sql
    assert 'GRANT SELECT ON public."tracks" TO "s"' in sql
    assert not any('"runs" TO "s"' in s for s in sql)
    assert 'GRANT USAGE, SELECT ON SEQUENCE public."tracks_id_seq" TO "ru"' in sql


@given(st.text(min_size=1, max_size=30))
def test_identifiers_and_literals_are_quoted(text: str) -> None:
    q = r.ident(text)
    assert q.startswith('"') and q.endswith('"') and q[1:-1].replace('""', "").count('"') == 0
    lit = r.literal(text)
    assert lit[1:-1].replace("''", "").count("'") == 0


def test_names_come_from_the_environment_and_must_differ() -> None:
    roles = r.Roles.from_env(
        {r.OWNER_ROLE_ENV: "a", r.RUNTIME_PASSWORD_ENV: "pw", r.SEARCH_ROLE_ENV: "c"}
    )
    assert roles.names() == ("a", "rap_runtime", "c")
    assert dict(roles.passwords) == {"rap_runtime": "pw"}
    assert "pw" not in repr(roles)
    with pytest.raises(r.RolesError, match="must differ"):
        r.Roles("x", "x", "y")
    with pytest.raises(r.RolesError, match="usable role name"):
        r.Roles("", "b", "c")
