"""The batch lane's pure parts (`spec.llm.mode: batch`): the input file's lines and
what the output and error files' lines mean for each track. No I/O here.

The requests are the sync lane's, byte for byte in their messages: the same prompt
(LLMAnalyzer.prompt_for: packing, truncation, the random per-request keys that name
the tracks), the same response format and provider switches, as one line of the
Batch API's JSONL input each - `{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body"}` (platform.openai.com/docs/guides/batch; Novita's
/openai/v1/batches takes the same file). `custom_id` names the run and the pack's
first item (`r<run>-i<item>`, `-k<n>` for a pack of n); which item had which key is
in the ledger (llm_batch_items), so an answer is mapped back by the keys asked, as
in the sync lane (schema.parse: foreign, duplicated or reordered entries make a
packed answer untrusted).

Output lines come in any order and are matched by `custom_id`. A line is used only
when its response is HTTP 200 with a chat completion in it; an error line, a line
missing from a batch that expired or was cancelled, an answer without a valid entry
for a track, or an untrusted packed answer leave the track to be submitted again
(alone, after an unusable or untrusted pack) - batch_shard.py bounds how often.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.analyzers.llm import schema
from analyzer_runtime.analyzers.llm.client import Completion
from analyzer_runtime.analyzers.llm.prompt import Prompt
from analyzer_runtime.contract.llm_presets import ResolvedLLM
from analyzer_runtime.contract.types import ResponseFormat

ENDPOINT: Final = "/v1/chat/completions"
# An input file holds at most 200 MB (platform.openai.com/docs/guides/batch, "Rate
# limits"); requests per file are bounded by spec.llm.batch.maxRequests (50,000).
MAX_FILE_BYTES = 200_000_000

# How an item's line ended (llm_batch_items.outcome).
DONE = "done"
ERROR = "error"  # an error-file line, or a response other than HTTP 200
MISSING = "missing"  # no line: the batch expired, was cancelled or failed first
UNUSABLE = "unusable"  # answered, but no valid entry for this track
UNTRUSTED = "untrusted"  # a packed answer that cannot be mapped back safely


def custom_id(run_id: int, item_ids: Sequence[int]) -> str:
    cid = f"r{run_id}-i{item_ids[0]}"
    return cid if len(item_ids) == 1 else f"{cid}-k{len(item_ids)}"


def group(
    tracks: Sequence[TrackInput], k: int, alone: Iterable[int] = ()
) -> list[list[TrackInput]]:
    """Packs of `k` tracks in order; the tracks of `alone` (their last pack's answer
    was unusable or untrusted) each in a pack of their own."""
    single = set(alone)
    packs: list[list[TrackInput]] = [[t] for t in tracks if t.id in single]
    rest = [t for t in tracks if t.id not in single]
    packs.extend(rest[i : i + k] for i in range(0, len(rest), k))
    return packs


def chat_body(resolved: ResolvedLLM, p: Prompt) -> dict[str, Any]:
    """The chat request the sync client would send for `p`, as a JSON body."""
    body: dict[str, Any] = {
        "model": resolved.model,
        "messages": p.messages,
        "max_tokens": p.max_tokens,
    }
    if resolved.temperature is not None:
        body["temperature"] = resolved.temperature
    if resolved.response_format is ResponseFormat.jsonSchema:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": schema.RESPONSE_FORMAT_SCHEMA,
        }
    else:
        body["response_format"] = {"type": "json_object"}
    body.update(resolved.extra_body() or {})
    return body


def request_line(cid: str, body: dict[str, Any]) -> str:
    return json.dumps(
        {"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def split_by_size(sizes: Sequence[int], max_bytes: int = MAX_FILE_BYTES) -> list[list[int]]:
    """Consecutive groups of the lines (their indexes) whose sizes add up to at most
    `max_bytes` each (a line bigger than that alone: the provider then refuses it)."""
    groups: list[list[int]] = []
    room = 0
    for i, size in enumerate(sizes):
        if not groups or size > room:
            groups.append([])
            room = max_bytes
        groups[-1].append(i)
        room -= size
    return groups


def input_file(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


@dataclass(frozen=True, slots=True)
class Line:
    """One output- or error-file line: the chat completion, or why there is none."""

    custom_id: str
    body: dict[str, Any] | None
    error: str | None


def read_lines(text: str) -> tuple[dict[str, Line], int]:
    """The lines of an output or error file by custom_id, and how many lines could not
    be read (a line without a custom_id maps to nothing)."""
    out: dict[str, Line] = {}
    bad = 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
            cid = doc["custom_id"]
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        if not isinstance(cid, str):
            bad += 1
            continue
        out[cid] = _line(cid, doc)
    return out, bad


def _line(cid: str, doc: dict[str, Any]) -> Line:
    response = doc.get("response") or {}
    error = doc.get("error")
    status = response.get("status_code")
    body = response.get("body")
    if status == 200 and isinstance(body, dict) and not error:
        return Line(cid, body, None)
    if isinstance(error, dict):
        what = f"{error.get('code') or 'error'}: {error.get('message') or 'no message'}"
    elif isinstance(body, dict) and isinstance(body.get("error"), dict):
        what = f"HTTP {status}: {body['error'].get('message') or 'no message'}"
    else:
        what = f"HTTP {status}" if status else "no response"
    return Line(cid, None, schema._cap(f"batch request failed ({what})"))


@dataclass(frozen=True, slots=True)
class Usage:
    prompt: int = 0
    completion: int = 0
    cached: int = 0


def usage_of(body: dict[str, Any]) -> Usage:
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int(details.get("cached_tokens") or 0),
    )


def completion_of(body: dict[str, Any]) -> Completion:
    """The chat completion of a line as the sync client's Completion."""
    choices = body.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    u = usage_of(body)
    return Completion(
        text=message.get("content"),
        refusal=message.get("refusal"),
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=u.prompt,
        completion_tokens=u.completion,
        usage_estimated=not body.get("usage"),
        attempts=1,
        cached_tokens=u.cached,
    )


@dataclass(slots=True)
class Verdict:
    """What one pack's line says of each of its tracks."""

    valid: dict[int, schema.TrackAnalysis] = field(default_factory=dict)
    outcome: dict[int, str] = field(default_factory=dict)
    reason: dict[int, str] = field(default_factory=dict)
    completion: Completion | None = None
    usage: Usage = field(default_factory=Usage)
    untrusted: str | None = None
    foreign: int = 0


def judge(p: Prompt, track_ids: Sequence[int], line: Line | None, *, why_missing: str) -> Verdict:
    """Each track of a pack: a valid analysis, or the outcome and reason that send it
    back (`why_missing`: what to say when the batch has no line for the pack)."""
    v = Verdict()
    if line is None or line.body is None:
        outcome = MISSING if line is None else ERROR
        reason = why_missing if line is None else (line.error or "batch request failed")
        for tid in track_ids:
            v.outcome[tid], v.reason[tid] = outcome, reason
        return v
    c = completion_of(line.body)
    v.completion, v.usage = c, usage_of(line.body)
    parsed = schema.parse(c.text, p.ids, finish_reason=c.finish_reason, refusal=c.refusal)
    v.foreign = parsed.foreign
    if len(p.ids) > 1 and parsed.untrusted:
        v.untrusted = parsed.untrusted
        for tid in track_ids:
            v.outcome[tid] = UNTRUSTED
            v.reason[tid] = f"packed answer not trusted ({parsed.untrusted})"
        return v
    for tid in track_ids:
        found = parsed.valid.get(p.key_of[tid])
        if found is not None:
            v.valid[tid], v.outcome[tid] = found, DONE
        else:
            v.outcome[tid], v.reason[tid] = UNUSABLE, parsed.reason_for(p.key_of[tid])
    return v
