"""The fake Batch API's input checks and line order (rap_devtools.fake_llm.batch_input):
the rules OpenAI's batch guide states, each failing the batch with its documented code."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from rap_devtools.fake_llm import batch_input

URL = "/v1/chat/completions"


def line(custom_id: str, *, model: str = "m", **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"custom_id": custom_id, "method": "POST", "url": URL,
                           "body": {"model": model, "messages": []}}  # fmt: skip
    return {**doc, **over}


def data(*lines: dict[str, Any] | str) -> bytes:
    return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()


def codes(errors: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    return [(e["code"], e["line"]) for e in errors]


def test_a_valid_file_reads_every_request_with_its_line() -> None:
    requests, errors = batch_input.read(
        data(line("a"), "", line("b"), "  "), endpoint=URL, max_requests=10
    )
    assert errors == []
    assert [(r.custom_id, r.line) for r in requests] == [("a", 1), ("b", 3)]
    assert requests[1].body == {"model": "m", "messages": []}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ((line("a"), line("a")), [("duplicate_custom_id", 2)]),
        ((line("a"), line("b", url="/v1/embeddings")), [("url_mismatch", 2)]),
        ((line("a"), line("b", model="other")), [("model_mismatch", 2)]),
        ((line("a"), "{not json"), [("invalid_json_line", 2)]),
        ((line("a"), '["a list"]'), [("invalid_json_line", 2)]),
        ((line("a", method="GET"),), [("invalid_value", 1)]),
        (({"method": "POST", "url": URL, "body": {"model": "m"}},),
         [("missing_required_parameter", 1)]),
        ((line("a", body={"messages": []}),), [("missing_required_parameter", 1)]),
        ((), [("empty_file", None)]),
    ],
)  # fmt: skip
def test_a_broken_rule_is_reported_with_its_code_and_line(
    lines: tuple[dict[str, Any] | str, ...], expected: list[tuple[str, int | None]]
) -> None:
    _, errors = batch_input.read(data(*lines), endpoint=URL, max_requests=10)
    assert codes(errors) == expected
    assert all(e["message"] for e in errors)


def test_more_requests_than_the_limit_is_too_many_tasks() -> None:
    lines = [line(str(i)) for i in range(4)]
    _, errors = batch_input.read(data(*lines), endpoint=URL, max_requests=3)
    assert codes(errors) == [("too_many_tasks", None)]
    _, errors = batch_input.read(data(*lines), endpoint=URL, max_requests=4)
    assert errors == []


@pytest.mark.parametrize("n", [2, 3, 10, 200])
def test_the_processing_order_is_a_permutation_never_the_input_order(n: int) -> None:
    for seed in range(50):
        order = batch_input.processing_order(n, random.Random(seed))
        assert sorted(order) == list(range(n))
        assert order != list(range(n))


def test_output_and_failure_lines_have_the_documented_shape() -> None:
    ok = batch_input.response_line("c1", 200, {"object": "chat.completion"})
    assert ok["id"].startswith("batch_req_")
    assert ok["custom_id"] == "c1" and ok["error"] is None
    assert ok["response"]["status_code"] == 200 and ok["response"]["request_id"]
    gone = batch_input.failure_line("c2", "batch_expired", batch_input.EXPIRED_MESSAGE)
    assert gone["response"] is None
    assert gone["error"] == {"code": "batch_expired", "message": batch_input.EXPIRED_MESSAGE}
    text = batch_input.jsonl([ok, gone]).decode()
    assert [json.loads(x)["custom_id"] for x in text.splitlines()] == ["c1", "c2"]
