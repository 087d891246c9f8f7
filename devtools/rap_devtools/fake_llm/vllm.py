"""The fake provider as vLLM's OpenAI-compatible server (`FakeConfig.flavour = "vllm"`):
how it constrains JSON, as its documentation and request models say.

- Structured outputs (docs.vllm.ai, "Structured Outputs", Online Serving): a JSON schema
  given as `response_format: {"type": "json_schema", "json_schema": {"name", "schema"}}`
  - the form SGLang documents too - or as vLLM's own `structured_outputs: {"json":
  schema}` body field constrains decoding (xgrammar/guidance), so the content always
  validates against the schema unless `max_tokens` cuts it off; `json_object` always
  gives valid JSON. There are no refusals: the grammar admits none. Here an answer the
  fake model would have written outside the constraint becomes its honest answer.
- Request validation (vllm/entrypoints/openai/protocol.py): `JsonSchemaResponseFormat`
  requires `name` (HTTP 400 without it); `structured_outputs` with more than one of
  json/regex/choice is a 400 ("You can only use one kind of constraints ...").
- The `guided_json`, `guided_regex`, `guided_choice`, `guided_grammar`,
  `guided_whitespace_pattern` and `guided_decoding_backend` fields were removed in
  v0.12.0 (the Structured Outputs page's warning; vllm-project/vllm#29326). Unknown
  fields are accepted and ignored with a logged warning ("The following fields were
  present in the request but ignored"), so such a request is answered 200,
  unconstrained. The log lists them (`ignored`) so a test can see what was dropped.
"""

from __future__ import annotations

import json
from typing import Any

from rap_devtools.fake_llm import answers

REMOVED_FIELDS = (
    "guided_json", "guided_regex", "guided_choice", "guided_grammar",
    "guided_whitespace_pattern", "guided_decoding_backend",
)  # fmt: skip


def request_error(body: dict[str, Any]) -> tuple[int, str, str] | None:
    """(status, message, code) of a request vLLM refuses in validation, or None."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not spec.get("name"):
            return 400, "response_format.json_schema.name: Field required", "BadRequestError"
    so = body.get("structured_outputs")
    if isinstance(so, dict) and sum(so.get(k) is not None for k in ("json", "regex", "choice")) > 1:
        return (
            400,
            "You can only use one kind of constraints for structured outputs"
            " ('json', 'regex' or 'choice').",
            "BadRequestError",
        )
    return None


def ignored_fields(body: dict[str, Any]) -> list[str]:
    """The removed guided_* fields in `body`: vLLM accepts and ignores them."""
    return [k for k in REMOVED_FIELDS if k in body]


def _schema(body: dict[str, Any]) -> dict[str, Any] | None:
    so = body.get("structured_outputs")
    if isinstance(so, dict) and isinstance(so.get("json"), dict):
        return so["json"]
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _json_only(body: dict[str, Any]) -> bool:
    return (body.get("response_format") or {}).get("type") == "json_object"


def constrain(
    body: dict[str, Any],
    tracks: list[dict[str, Any]],
    content: str | None,
    refusal: str | None,
    finish: str,
    *,
    labels: str,
    seed: int,
) -> tuple[str | None, str | None]:
    """(content, refusal) as constrained decoding lets them out: unchanged when the
    request has no constraint or the answer was cut off; else the content if it meets
    the constraint, the honest answer if not, and never a refusal."""
    schema = _schema(body)
    if (schema is None and not _json_only(body)) or finish != "stop":
        return content, refusal
    if content is not None and _meets(content, schema):
        return content, None
    honest = {"results": [answers.expected(t, labels=labels, seed=seed) for t in tracks]}
    return json.dumps(honest), None


def _meets(content: str, schema: dict[str, Any] | None) -> bool:
    import jsonschema_rs

    try:
        doc = json.loads(content)
    except ValueError:
        return False
    return schema is None or jsonschema_rs.validator_for(schema).is_valid(doc)
