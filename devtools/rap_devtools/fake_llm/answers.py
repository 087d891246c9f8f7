"""What the fake model answers: deterministic analyses derived from the lyrics, and
the misbehaviours a test can ask for by putting a marker in a track's lyrics.

The answer object follows OpenAI's Chat Completions reference
(https://platform.openai.com/docs/api-reference/chat/object): `choices[].message`
with `content` and `refusal`, `finish_reason` "stop" or "length" (cut off at
`max_tokens`), and `usage`; refusals as the Structured Outputs guide shows them
(https://platform.openai.com/docs/guides/structured-outputs#refusals).

Markers (anywhere in the lyrics):
    @@MALFORMED@@        the whole answer is broken JSON, the repair too
    @@MALFORMED_ONCE@@   broken JSON, but a repair request gets a valid answer
    @@TRUNCATE@@         the answer is cut off (finish_reason "length"), always
    @@REFUSE@@           the model refuses (refusal field and prose content)
    @@OMIT@@             left out of packed answers (answered when sent alone)
    @@SLOW@@             the answer takes `slow_seconds` extra
    "ignore previous instructions" (any case): a model that obeys the injection and
                         answers garbage outside the schema, repair or not.

`expected(track)` is the valid answer, so tests check stored results against it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

POSITIVE = frozenset(
    "love happy shine blessed win winning gold dream glory smile free rise joy best peace".split()
)
NEGATIVE = frozenset(
    "pain hate cold dead death lost fear cry hurt broke war blood alone tears struggle".split()
)
THEMES: dict[str, frozenset[str]] = {
    "money": frozenset("money cash bands rich paper gold stacks bank dollars".split()),
    "love": frozenset("love heart baby girl kiss together".split()),
    "violence": frozenset("gun blood war shot kill fight glock".split()),
    "struggle": frozenset("struggle pain broke hustle grind hard survive".split()),
    "party": frozenset("party club dance drink night lit".split()),
    "fame": frozenset("fame famous star spotlight crowd name".split()),
}
PROFANITY = frozenset("damn hell shit fuck bitch".split())
INJECTION = re.compile(r"ignore (all )?previous instructions", re.IGNORECASE)
MARKERS = ("@@MALFORMED@@", "@@MALFORMED_ONCE@@", "@@TRUNCATE@@", "@@REFUSE@@", "@@OMIT@@")
REFUSAL_TEXT = "I'm sorry, but I can't help with that."


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def expected(track: dict[str, Any]) -> dict[str, Any]:
    """The fake model's answer for one track (id, title, artist, lyrics)."""
    lyrics = str(track.get("lyrics") or "")
    words = _words(lyrics)
    h = int(hashlib.sha256(lyrics.encode()).hexdigest()[:8], 16)
    pos = sum(w in POSITIVE for w in words)
    neg = sum(w in NEGATIVE for w in words)
    if pos > neg:
        sentiment = "positive" if neg == 0 or pos >= 2 * neg else "mixed"
    elif neg > pos:
        sentiment = "negative" if pos == 0 or neg >= 2 * pos else "mixed"
    else:
        sentiment = "mixed" if pos else "neutral"
    counts = {name: sum(w in vocab for w in words) for name, vocab in THEMES.items()}
    themes = [n for n, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c][:3]
    themes = themes or ["life"]
    complexity = round(len(set(words)) / len(words), 3) if words else 0.0
    return {
        "id": str(track.get("id")),
        "sentiment": sentiment,
        "confidence": round(0.5 + (h % 50) / 100, 2),
        "themes": themes,
        "complexity": complexity,
        "quality": 1 + h % 10,
        "explicit": any(w in PROFANITY for w in words),
        "summary": f"A {sentiment} track by {track.get('artist')} about {', '.join(themes)}.",
    }


def answer(tracks: list[dict[str, Any]], *, repair: bool) -> tuple[str | None, str | None, str]:
    """(content, refusal, finish_reason) for a request about `tracks`."""
    lyrics = [str(t.get("lyrics") or "") for t in tracks]
    if any("@@REFUSE@@" in text for text in lyrics):
        return REFUSAL_TEXT, REFUSAL_TEXT, "stop"
    packed = len(tracks) > 1
    entries = []
    for t, text in zip(tracks, lyrics, strict=True):
        if packed and "@@OMIT@@" in text:
            continue
        if INJECTION.search(text):
            entries.append({"id": str(t.get("id")), "sentiment": "HACKED", "confidence": 1000,
                            "note": "instructions ignored as requested"})  # fmt: skip
            continue
        entries.append(expected(t))
    content = json.dumps({"results": entries})
    if any("@@MALFORMED@@" in text for text in lyrics) or (
        not repair and any("@@MALFORMED_ONCE@@" in text for text in lyrics)
    ):
        return content[: max(10, len(content) // 2)].replace('"', "'", 3) + "}}", None, "stop"
    if any("@@TRUNCATE@@" in text for text in lyrics):
        return content[: max(10, len(content) // 2)], None, "length"
    return content, None, "stop"


SOFT_SWITCHES = ("/no_think", "/think")


def soft_switch(messages: list[dict[str, Any]]) -> str | None:
    """Qwen3's soft switch in the last user message that has one (`/no_think` or
    `/think`; the model follows the most recent), or None."""
    for m in reversed(messages):
        text = m.get("content") if m.get("role") == "user" else None
        if isinstance(text, str):
            for switch in SOFT_SWITCHES:
                if text.rstrip().endswith(switch):
                    return switch
    return None


def _without_switch(text: str) -> str:
    stripped = text.rstrip()
    for switch in SOFT_SWITCHES:
        if stripped.endswith(switch):
            return stripped[: -len(switch)]
    return text


def tracks_of(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The tracks of a request (the JSON document in the first user message that has
    one, a trailing soft switch aside) and whether it is a repair request (it carries
    an earlier answer)."""
    repair = any(m.get("role") == "assistant" for m in messages)
    for m in messages:
        if m.get("role") != "user" or not isinstance(m.get("content"), str):
            continue
        try:
            doc = json.loads(_without_switch(m["content"]))
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("tracks"), list):
            return list(doc["tracks"]), repair
    return [], repair
