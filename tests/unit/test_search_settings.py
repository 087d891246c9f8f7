"""The search API's settings and bearer-token parsing (analyzer_runtime/api): pure."""

from __future__ import annotations

import pytest

from analyzer_runtime.api.app import bearer_token
from analyzer_runtime.api.settings import ApiSettings, InvalidSettings, from_env


def _no_file(path: str) -> str:
    raise AssertionError(f"read {path}")


def test_defaults_without_any_variable() -> None:
    s = from_env({}, _no_file)
    assert s == ApiSettings()
    assert s.token is None and s.metrics_port == 0 and s.max_in_flight == 32


def test_every_variable() -> None:
    s = from_env(
        {
            "RAP_SEARCH_TOKEN": " abc ",
            "RAP_SEARCH_MAX_IN_FLIGHT": "7",
            "RAP_SEARCH_POOL_SIZE": "3",
            "RAP_SEARCH_ACQUIRE_TIMEOUT": "0.5",
            "RAP_SEARCH_STATEMENT_TIMEOUT": "1.5",
            "RAP_SEARCH_READY_TIMEOUT": "3",
            "RAP_SEARCH_METRICS_PORT": "9090",
        },
        _no_file,
    )
    assert s == ApiSettings("abc", 7, 3, 0.5, 1.5, 3.0, 9090)


def test_the_token_from_a_file() -> None:
    s = from_env({"RAP_SEARCH_TOKEN_FILE": "/run/t"}, {"/run/t": "tok\n"}.__getitem__)
    assert s.token == "tok"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RAP_SEARCH_TOKEN": ""}, "set but empty"),
        ({"RAP_SEARCH_TOKEN": "a b"}, "whitespace"),
        ({"RAP_SEARCH_TOKEN": "x", "RAP_SEARCH_TOKEN_FILE": "/t"}, "not both"),
        ({"RAP_SEARCH_MAX_IN_FLIGHT": "0"}, "RAP_SEARCH_MAX_IN_FLIGHT='0': at least 1"),
        ({"RAP_SEARCH_POOL_SIZE": "two"}, "is not an integer"),
        ({"RAP_SEARCH_STATEMENT_TIMEOUT": "0"}, "at least"),
        ({"RAP_SEARCH_METRICS_PORT": "70000"}, "at most 65535"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidSettings, match=message):
        from_env(env, _no_file)


def test_an_unreadable_token_file_is_refused() -> None:
    def missing(path: str) -> str:
        raise FileNotFoundError(path)

    with pytest.raises(InvalidSettings, match="cannot read /nope"):
        from_env({"RAP_SEARCH_TOKEN_FILE": "/nope"}, missing)


def test_the_repr_never_shows_the_token() -> None:
    text = repr(from_env({"RAP_SEARCH_TOKEN": "hunter2"}, _no_file))
    assert "hunter2" not in text and "token=set" in text


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ([(b"authorization", b"Bearer abc")], b"abc"),
        ([(b"authorization", b"bearer abc ")], b"abc"),
        ([(b"authorization", b"Basic abc")], None),
        ([(b"authorization", b"Bearer")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([(b"x-other", b"Bearer abc")], None),
        ([], None),
    ],
)
def test_bearer_token(headers: list[tuple[bytes, bytes]], token: bytes | None) -> None:
    assert bearer_token(headers) == token
