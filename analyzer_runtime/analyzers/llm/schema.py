"""What the model must answer, and the parsing that keeps anything else out of the table.

`TrackAnalysis` is the validator; `RESPONSE_FORMAT_SCHEMA` is the same shape as a
strict JSON schema for providers with structured outputs (a unit test keeps the
two in step). Entries are validated one by one, so in a packed answer one bad
entry costs only its own track.

Only the keys asked for are taken, and only when the answer can be trusted to map
them: entries for keys that were not asked are dropped and counted (`foreign`), a
key answered twice is taken from neither entry, and entries out of the asked order
mark the answer `reordered`. A packed answer with any of these is `untrusted`: a
lyric may have talked the model into writing for its pack-mates (the analyzer then
asks for every track of the pack alone).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

MAX_REASON = 300


class Sentiment(StrEnum):
    positive = "positive"
    negative = "negative"
    neutral = "neutral"
    mixed = "mixed"


Theme = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=40)
]


class TrackAnalysis(BaseModel):
    """One track's answer. Lax types (a model may write "0.8" or 7.0), strict ranges."""

    model_config = ConfigDict(extra="ignore")

    id: str
    sentiment: Sentiment
    confidence: float = Field(ge=0, le=1)
    themes: list[Theme] = Field(default_factory=list, max_length=8)
    complexity: float = Field(ge=0, le=1)
    quality: int = Field(ge=1, le=10)
    explicit: bool
    summary: str = Field(min_length=1, max_length=500)


_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id", "sentiment", "confidence", "themes", "complexity", "quality", "explicit", "summary",
    ],
    "properties": {
        "id": {"type": "string"},
        "sentiment": {"type": "string", "enum": [s.value for s in Sentiment]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "themes": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
        "complexity": {"type": "number", "minimum": 0, "maximum": 1},
        "quality": {"type": "integer", "minimum": 1, "maximum": 10},
        "explicit": {"type": "boolean"},
        "summary": {"type": "string"},
    },
}  # fmt: skip

RESPONSE_FORMAT_SCHEMA: dict[str, Any] = {
    "name": "track_analyses",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["results"],
        "properties": {"results": {"type": "array", "items": _ITEM_SCHEMA}},
    },
}


@dataclass(slots=True)
class ParsedAnswer:
    """Valid analyses by id; per-id errors; `problem` when the answer as a whole is
    unusable (not JSON, truncated, a refusal). Ids in neither map are missing."""

    valid: dict[str, TrackAnalysis] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    truncated: bool = False  # cut off by the token limit
    foreign: int = 0  # entries for keys that were not asked (dropped)
    duplicated: frozenset[str] = frozenset()  # keys with more than one entry (not taken)
    reordered: bool = False  # the asked keys came back in another order

    @property
    def needs_repair(self) -> bool:
        return self.problem is not None or bool(self.errors)

    @property
    def untrusted(self) -> str | None:
        """Why the entries cannot be trusted to belong to the keys they name (for a
        packed request), or None. Counts only: never an id or a word of the answer."""
        why = []
        if self.foreign:
            why.append(f"{self.foreign} entries for tracks not in the request")
        if self.duplicated:
            why.append(f"{len(self.duplicated)} tracks answered more than once")
        if self.reordered:
            why.append("entries out of the requested order")
        return ", ".join(why) or None

    def describe(self) -> str:
        if self.problem:
            return self.problem
        return "; ".join(f"track {i}: {e}" for i, e in list(self.errors.items())[:3])

    def reason_for(self, track_id: str) -> str:
        """Why a track has no valid analysis, for run_items.last_error."""
        if track_id in self.errors:
            return self.errors[track_id]
        return self.problem or "the answer had no entry for this track"


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_FENCE_ANYWHERE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def strip_thinking(text: str) -> str:
    """The answer without Qwen3-style reasoning: closed blocks (`<think>…</think>`, the
    empty `<think>\n\n</think>` of /no_think included), a closing tag whose opening the
    server's chat template already consumed (everything before it is thinking), and an
    unclosed block (thinking cut off by the token limit: nothing after it is an answer)."""
    body = _THINK_BLOCK.sub("", text)
    if (close := list(_THINK_CLOSE.finditer(body))) and not _THINK_OPEN.search(
        body[: close[-1].start()]
    ):
        body = body[close[-1].end() :]
    if m := _THINK_OPEN.search(body):
        body = body[: m.start()]
    return body.strip()


def extract_json(body: str) -> Any:
    """The JSON document in an answer: the whole body; else a ```json fenced block anywhere
    (prose before and after tolerated); else the first balanced JSON object in it.
    Raises ValueError (the whole body's error) when there is none."""
    try:
        return json.loads(body)
    except ValueError as whole:
        for m in _FENCE_ANYWHERE.finditer(body):
            try:
                return json.loads(m.group(1).strip())
            except ValueError:
                continue
        start = body.find("{")
        while start != -1:
            try:
                doc, _ = _DECODER.raw_decode(body, start)
                if isinstance(doc, dict):
                    return doc
            except ValueError:
                pass
            start = body.find("{", start + 1)
        raise whole from None


def parse(
    text: str | None, ids: list[str], *, finish_reason: str | None = None,
    refusal: str | None = None,
) -> ParsedAnswer:  # fmt: skip
    """Tolerant about where the JSON is (thinking, fences, prose around it), strict about
    what it is: every entry is validated, and only the ids asked for are taken."""
    if refusal:
        return ParsedAnswer(problem=_cap(f"the model refused: {refusal}"))
    raw = (text or "").strip()
    body = strip_thinking(raw)
    try:
        doc = extract_json(body)
    except ValueError as exc:
        if finish_reason == "length":
            if not body:
                return ParsedAnswer(
                    problem="no answer: the token limit was reached (thinking?)", truncated=True
                )
            return ParsedAnswer(
                problem="truncated JSON: the answer hit the token limit", truncated=True
            )
        if not body:
            if raw:
                return ParsedAnswer(problem="only thinking, no answer")
            return ParsedAnswer(problem="empty answer")
        if not body.lstrip().startswith(("{", "[")):
            return ParsedAnswer(problem=_cap(f"not JSON (possibly a refusal): {body[:120]!r}"))
        return ParsedAnswer(problem=_cap(f"malformed JSON: {exc}"))
    entries = _entries(doc, ids)
    if entries is None:
        return ParsedAnswer(problem='wrong shape: expected {"results": [...]}')
    out = ParsedAnswer()
    wanted = set(ids)
    seen: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        tid = str(entry.get("id"))
        if tid not in wanted:
            out.foreign += 1  # never written anywhere: the key names no track asked
            continue
        seen.append(tid)
        try:
            analysis = TrackAnalysis.model_validate({**entry, "id": tid})
        except ValidationError as exc:
            out.errors.setdefault(tid, _cap("answer failed validation: " + _first_error(exc)))
            continue
        out.valid.setdefault(tid, analysis)
    twice = frozenset(t for t in seen if seen.count(t) > 1)
    for tid in twice:  # which of the two is the model's own? Neither is taken.
        out.valid.pop(tid, None)
        out.errors[tid] = "more than one entry for this track: not trusted"
    out.duplicated = twice
    order = {tid: i for i, tid in enumerate(ids)}
    firsts = list(dict.fromkeys(seen))
    out.reordered = any(order[a] > order[b] for a, b in itertools.pairwise(firsts))
    return out


def _entries(doc: Any, ids: list[str]) -> list[Any] | None:
    if isinstance(doc, dict) and isinstance(doc.get("results"), list):
        return list(doc["results"])
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and len(ids) == 1 and "sentiment" in doc:
        return [{"id": ids[0], **doc}]  # a lone object for a lone track
    return None


def _first_error(exc: ValidationError) -> str:
    errs = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errs[:3]]
    return "; ".join(parts)


def _cap(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
