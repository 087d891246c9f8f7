"""`redact` (analyzer_runtime/contract/redaction.py, re-exported by db.connect) on every form a
database password is written in (issue 23): URL userinfo percent-encoded and pasted
raw (with '/', '@', ':', spaces ...), `?password=` query parameters, libpq key=value
DSNs quoted and unquoted, alone and quoted inside an error message. For passwords
hypothesis generates, the output is exactly the text with the password replaced by
***: the host, database and the rest of the message stay, and neither the password nor
its percent-encoding is left."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analyzer_runtime.analyzers.llm.redaction import Redactor
from analyzer_runtime.contract.redaction import MASK
from analyzer_runtime.ledger.connect import redact

HOST, DB = "db.example.internal:5432", "rapdb"

# Any printable password, spaces and URL delimiters included; no control character
# (a URL cannot hold a raw line break, and nobody pastes a DSN quoting one).
PASSWORDS = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")),
    min_size=1,
    max_size=40,
)


def _libpq_quoted(pw: str) -> str:
    return "'" + pw.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _libpq_unquoted(pw: str) -> str:
    # libpq: an unquoted value ends at whitespace; a backslash escapes the next character.
    return "".join("\\" + c if c.isspace() or c in "\\'\"" else c for c in pw)


# (form, what libpq or a person writes for password p, whether the raw password can be
# written that way)
FORMS: dict[str, tuple[Callable[[str], str], Callable[[str], bool]]] = {
    "url-encoded": (lambda p: f"postgresql://rap:{quote(p, safe='')}@{HOST}/{DB}", lambda p: True),
    # As pasted: libpq splits at the last '@' before the host, so any character goes.
    "url-raw": (lambda p: f"postgresql://rap:{p}@{HOST}/{DB}?sslmode=require", lambda p: True),
    "query-encoded": (
        lambda p: f"postgresql://{HOST}/{DB}?user=rap&password={quote(p, safe='')}&sslmode=require",
        lambda p: True,
    ),
    # Raw in a query, a value ends at '&' (and '#' starts the fragment).
    "query-raw": (
        lambda p: f"postgres://{HOST}/{DB}?user=rap&password={p}&sslmode=require",
        lambda p: not set(p) & set("&#"),
    ),
    "dsn-quoted": (
        lambda p: f"host=db.example.internal port=5432 password={_libpq_quoted(p)} dbname={DB}",
        lambda p: True,
    ),
    "dsn-unquoted": (
        lambda p: f"host=db.example.internal password={_libpq_unquoted(p)} dbname={DB} user=rap",
        lambda p: True,
    ),
}


def _expected(form: str) -> str:
    """The form with the password (and its quoting) replaced by the mask."""
    marker = "PASSWORDPLACEHOLDER"
    text = FORMS[form][0](marker)
    return text.replace(f"'{marker}'", marker).replace(marker, MASK)


@pytest.mark.parametrize("form", list(FORMS))
@settings(max_examples=150, deadline=None)
@given(pw=PASSWORDS)
@example(pw="p/w")
@example(pw="a b")
@example(pw="p@ss:w/rd?x#y")
@example(pw="it's \\ fine")
@example(pw="tail@host.example/db")
def test_the_password_is_gone_in_every_form(form: str, pw: str) -> None:
    write, possible = FORMS[form]
    if not possible(pw):
        return
    for before, after in (("", ""), ("cannot connect to ", ": connection refused (timeout 5s)")):
        out = redact(before + write(pw) + after)
        assert out == before + _expected(form) + after
        assert "db.example.internal" in out and DB in out
        for leaked in {pw, quote(pw, safe=""), quote(pw)}:
            if leaked not in before + _expected(form) + after:
                assert leaked not in out


@given(pw=PASSWORDS)
@settings(max_examples=100, deadline=None)
def test_the_llm_log_filter_redacts_database_urls_too(pw: str) -> None:
    url = f"postgresql://rap:{pw}@{HOST}/{DB}"
    out = Redactor("sk-not-this-one-0123456789").redact(f"shard 3 lost {url}: gone")
    assert out == f"shard 3 lost postgresql://rap:{MASK}@{HOST}/{DB}: gone"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("PGPASSWORD=s3cret psql -h h", f"PGPASSWORD={MASK} psql -h h"),
        (
            "Params(user='rap', password='a b', database='rapdb')",
            f"Params(user='rap', password={MASK}, database='rapdb')",
        ),
        ('{"password": "x y", "host": "h"}', f'{{"password": {MASK}, "host": "h"}}'),
        (
            "https://api.example/v1?q=a&access_token=abc123#top",
            f"https://api.example/v1?q=a&access_token={MASK}#top",
        ),
        # Not secrets: left alone.
        ("max_tokens=300 for user rap at https://h:8080/v1", None),
        ('password authentication failed for user "rap"', None),
        ("postgresql://rap@h/rapdb?sslmode=require", None),
    ],
)
def test_other_secret_forms_and_what_is_left_alone(text: str, want: str | None) -> None:
    assert redact(text) == (text if want is None else want)
