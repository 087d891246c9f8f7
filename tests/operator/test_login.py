"""The operator's login line names the ServiceAccount, never the token."""

import base64
import json

from rap_operator.login import token_subject


def _jwt(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_subject_of_a_serviceaccount_token() -> None:
    token = _jwt({"sub": "system:serviceaccount:rap-analyzer:rap-analyzer", "aud": ["x"]})
    assert token_subject(token) == "system:serviceaccount:rap-analyzer:rap-analyzer"


def test_not_a_jwt_gives_none() -> None:
    assert token_subject("opaque-token") is None
    assert token_subject("a.!!!.c") is None
    assert token_subject(_jwt({"aud": "x"})) is None
