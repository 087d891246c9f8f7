"""A batch's input file read and checked, and the lines of its output and error files:
the pure half of the fake Batch API (batches.py).

Input (https://platform.openai.com/docs/api-reference/batch/request-input): one JSON
object a line, `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`;
"each input file can only include requests to a single model" and custom_id must be
unique (https://platform.openai.com/docs/guides/batch). A file that breaks a rule fails
the whole batch at validation with `errors.data[]` of `{code, line, message, param}`;
the codes are those OpenAI's batches report: `invalid_json_line`, `duplicate_custom_id`,
`url_mismatch`, `model_mismatch`, `empty_file`, `too_many_tasks` (at most 50,000
requests), `missing_required_parameter`; `invalid_value` for a method other than POST is
the fake's. Blank lines are skipped.

Output (https://platform.openai.com/docs/api-reference/batch/request-output): a line
`{"id": "batch_req_…", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}`; an HTTP failure keeps `response` (a 4xx/5xx status, the error body) with
`error: null`, a failure that is not HTTP (`batch_expired`, `batch_cancelled`) has
`response: null` and `error: {code, message}`.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from typing import Any

EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
CANCELLED_MESSAGE = "This request was not executed because the batch was cancelled."


@dataclass(frozen=True)
class Request:
    line: int  # 1-based, in the input file
    custom_id: str
    body: dict[str, Any]


def _error(code: str, message: str, line: int | None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


def read(
    data: bytes, *, endpoint: str, max_requests: int
) -> tuple[list[Request], list[dict[str, Any]]]:
    """The requests of an input file and the errors that fail its batch (none: valid)."""
    requests: list[Request] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    for n, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            errors.append(
                _error("invalid_json_line", "This line is not parseable as valid JSON.", n)
            )
            continue
        custom_id, body = doc.get("custom_id"), doc.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(_missing("custom_id", n))
            continue
        if custom_id in seen:
            errors.append(_error(
                "duplicate_custom_id",
                "The custom_id for this request is a duplicate of another request. The "
                "custom_id parameter must be unique for each request in a batch.",
                n, "custom_id",
            ))  # fmt: skip
            continue
        seen.add(custom_id)
        if doc.get("method") != "POST":
            errors.append(_error(
                "invalid_value", "The method must be POST.", n, "method"
            ))  # fmt: skip
            continue
        if doc.get("url") != endpoint:
            errors.append(_error(
                "url_mismatch",
                f"The provided URL {doc.get('url')!r} does not match the batch's endpoint "
                f"{endpoint!r}.",
                n, "url",
            ))  # fmt: skip
            continue
        if not isinstance(body, dict):
            errors.append(_missing("body", n))
            continue
        if not isinstance(body.get("model"), str):
            errors.append(_missing("body.model", n))
            continue
        model = model or body["model"]
        if body["model"] != model:
            errors.append(_error(
                "model_mismatch",
                f"The model {body['model']!r} differs from the file's model {model!r}: "
                "each input file can only include requests to a single model.",
                n, "body.model",
            ))  # fmt: skip
            continue
        requests.append(Request(n, custom_id, body))
    if not errors and not requests:
        errors.append(_error("empty_file", "The input file is empty.", None))
    total = len(requests) + len(errors)
    if total > max_requests:
        errors.append(_error(
            "too_many_tasks",
            f"The batch input file has {total} requests; the limit is {max_requests}.",
            None,
        ))  # fmt: skip
    return requests, errors


def _missing(param: str, line: int) -> dict[str, Any]:
    return _error(
        "missing_required_parameter", f"Missing required parameter: '{param}'.", line, param
    )


def processing_order(n: int, rng: random.Random) -> list[int]:
    """The order a batch runs (and writes) its n requests: shuffled, and never the input
    order for n >= 2, since OpenAI's output "may not match the input order"."""
    order = list(range(n))
    rng.shuffle(order)
    if n >= 2 and order == sorted(order):
        order = order[1:] + order[:1]
    return order


def _line_id() -> str:
    return f"batch_req_{uuid.uuid4().hex[:24]}"


def response_line(custom_id: str, status_code: int, body: dict[str, Any]) -> dict[str, Any]:
    """An answered request: a chat.completion (200) or the provider's error body."""
    return {
        "id": _line_id(),
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": uuid.uuid4().hex, "body": body},
        "error": None,
    }


def failure_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    """A request that was never answered (`batch_expired`, `batch_cancelled`)."""
    return {
        "id": _line_id(),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)
