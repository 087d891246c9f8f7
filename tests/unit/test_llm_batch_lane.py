"""The batch lane's pure parts: the input file's lines (the sync lane's requests),
reading output and error lines, what a line says of each track, the status block,
and which providers may run in batch mode at what price."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.analyzers.llm import batch_lane, prompt
from analyzer_runtime.analyzers.llm.analyzer import LLMAnalyzer
from analyzer_runtime.contract import llm_presets as presets
from analyzer_runtime.contract.models import LLMOptions
from analyzer_runtime.contract.status_model import LLMBatches
from analyzer_runtime.ledger import batch_status
from analyzer_runtime.ledger import batches as batch_ledger


def _tracks(n: int) -> list[TrackInput]:
    return [TrackInput(i, f"t{i}", "A", f"money love {i}") for i in range(1, n + 1)]


def _answer(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "choices": [
            {
                "message": {"role": "assistant", "content": json.dumps({"results": entries})},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 300,
            "completion_tokens": 90,
            "prompt_tokens_details": {"cached_tokens": 128},
        },
    }


def _entry(key: str, quality: int = 7) -> dict[str, Any]:
    return {"id": key, "sentiment": "positive", "confidence": 0.9, "themes": ["money"],
            "complexity": 0.4, "quality": quality, "explicit": False, "summary": "A song."}  # fmt: skip


def _out(cid: str, body: dict[str, Any], status: int = 200) -> str:
    return json.dumps(
        {"id": "batch_req_1", "custom_id": cid, "error": None,
         "response": {"status_code": status, "request_id": "r", "body": body}}
    )  # fmt: skip


def test_custom_ids_name_the_run_and_the_pack() -> None:
    assert batch_lane.custom_id(7, [42]) == "r7-i42"
    assert batch_lane.custom_id(7, [42, 43, 44]) == "r7-i42-k3"


def test_tracks_whose_pack_failed_them_go_alone_the_rest_in_packs_of_k() -> None:
    packs = batch_lane.group(_tracks(7), 3, alone={2, 5})
    assert [[t.id for t in p] for p in packs] == [[2], [5], [1, 3, 4], [6, 7]]


@pytest.mark.parametrize("provider", ["novita", "openai"])
def test_a_line_carries_the_sync_lanes_request(provider: str) -> None:
    a = LLMAnalyzer(provider=provider, mode="batch")
    p = a.prompt_for(_tracks(2))
    line = json.loads(batch_lane.request_line("r1-i1-k2", batch_lane.chat_body(a.resolved, p)))
    assert (line["custom_id"], line["method"], line["url"]) == (
        "r1-i1-k2", "POST", "/v1/chat/completions",
    )  # fmt: skip
    body = line["body"]
    assert body["model"] == a.resolved.model and body["messages"] == p.messages
    assert body["max_tokens"] == p.max_tokens
    if provider == "novita":  # Qwen3's thinking switched off, JSON mode, temperature 0.7
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
        assert body["response_format"] == {"type": "json_object"}
        assert body["temperature"] == 0.7
    else:
        assert body["response_format"]["type"] == "json_schema" and "temperature" not in body
    # The static prefix is the sync lane's, byte for byte (prompt caching applies).
    assert p.messages[0]["content"] == prompt.SYSTEM_PROMPT


def test_output_and_error_lines_are_read_by_custom_id_in_any_order() -> None:
    expired = json.dumps({"id": "x", "custom_id": "r1-i3", "response": None,
                          "error": {"code": "batch_expired", "message": "window expired"}})  # fmt: skip
    server = _out("r1-i2", {"error": {"message": "boom", "type": "server_error"}}, 500)
    text = "\n".join([_out("r1-i1", _answer([])), expired, server, "not json", ""])
    lines, bad = batch_lane.read_lines(text)
    assert bad == 1 and set(lines) == {"r1-i1", "r1-i2", "r1-i3"}
    assert lines["r1-i1"].body is not None and lines["r1-i1"].error is None
    assert lines["r1-i3"].body is None and "batch_expired: window expired" in str(
        lines["r1-i3"].error
    )
    assert lines["r1-i2"].body is None and "HTTP 500: boom" in str(lines["r1-i2"].error)


def _prompt(n: int) -> tuple[prompt.Prompt, list[int]]:
    tracks = _tracks(n)
    return prompt.build(tracks), [t.id for t in tracks]


def test_a_valid_packed_answer_labels_each_track_with_the_lines_usage() -> None:
    p, ids = _prompt(2)
    line = batch_lane.Line("c", _answer([_entry(k) for k in p.ids]), None)
    v = batch_lane.judge(p, ids, line, why_missing="-")
    assert set(v.valid) == set(ids) and v.outcome == dict.fromkeys(ids, batch_lane.DONE)
    assert v.usage == batch_lane.Usage(300, 90, 128)
    assert v.completion is not None and v.completion.prompt_tokens == 300


def test_a_track_missing_from_a_packed_answer_is_unusable_its_mate_is_done() -> None:
    p, ids = _prompt(2)
    line = batch_lane.Line("c", _answer([_entry(p.ids[0])]), None)
    v = batch_lane.judge(p, ids, line, why_missing="-")
    assert v.outcome == {ids[0]: batch_lane.DONE, ids[1]: batch_lane.UNUSABLE}
    assert v.reason[ids[1]] == "the answer had no entry for this track"


def test_a_reordered_packed_answer_is_not_trusted_at_all() -> None:
    p, ids = _prompt(2)
    line = batch_lane.Line("c", _answer([_entry(k) for k in reversed(p.ids)]), None)
    v = batch_lane.judge(p, ids, line, why_missing="-")
    assert not v.valid and set(v.outcome.values()) == {batch_lane.UNTRUSTED}
    assert v.untrusted == "entries out of the requested order"


def test_no_line_and_an_error_line_send_the_tracks_back_with_the_reason() -> None:
    p, ids = _prompt(1)
    missing = batch_lane.judge(p, ids, None, why_missing="batch expired")
    assert missing.outcome == {ids[0]: batch_lane.MISSING}
    assert missing.reason == {ids[0]: "batch expired"} and missing.usage.prompt == 0
    err = batch_lane.judge(
        p, ids, batch_lane.Line("c", None, "batch request failed (x)"), why_missing="-"
    )
    assert err.outcome == {ids[0]: batch_lane.ERROR} and not err.valid


def _summary(**by_state: int) -> batch_ledger.BatchSummary:
    return batch_ledger.BatchSummary(
        by_state=by_state, collected=2, requests_total=30, requests_completed=25,
        requests_failed=3,
        open=[{"shard": 1, "provider_batch_id": None, "state": "submitting",
               "requests_total": 10, "requests_completed": 0, "requests_failed": 0,
               "expires_at": None},
              {"shard": 0, "provider_batch_id": "batch_1", "state": "in_progress",
               "requests_total": 10, "requests_completed": 5, "requests_failed": 1,
               "expires_at": datetime(2026, 12, 6, 9, 0, tzinfo=UTC)}],
    )  # fmt: skip


def test_the_status_block_has_every_state_and_no_nulls_in_its_list() -> None:
    out = batch_status.render(_summary(completed=2, in_progress=1, submitting=1))
    assert (out["batches"], out["inFlight"], out["collected"]) == (4, 2, 2)
    assert out["states"]["inProgress"] == 1 and out["states"]["expired"] == 0
    assert len(out["states"]) == 9  # a count that drops to 0 is written as 0 (merge patch)
    assert out["open"] == [
        {"shard": 1, "state": "submitting", "requests": "0/10"},
        {"shard": 0, "state": "in_progress", "requests": "5/10 (1 failed)",
         "batchId": "batch_1", "expiresAt": "2026-12-06T09:00:00Z"},
    ]  # fmt: skip
    LLMBatches.model_validate(out)


@pytest.mark.parametrize(
    ("provider", "words"),
    [("vllm", "run-batch works on files offline"), ("ollama", "provider 'ollama' has none")],
)
def test_batch_mode_is_refused_for_providers_without_a_batch_api(provider: str, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        LLMOptions.model_validate(
            {"provider": provider, "mode": "batch", "baseURL": "http://h:8000/v1", "model": "m"}
        )
    assert words in str(err.value) and "use mode sync" in str(err.value)


def test_a_window_the_provider_does_not_offer_is_refused() -> None:
    with pytest.raises(
        ValidationError, match="completionWindow 24h is not offered by provider 'novita'"
    ):
        LLMOptions.model_validate(
            {"provider": "novita", "mode": "batch", "batch": {"completionWindow": "24h"}}
        )


def test_the_batch_lane_is_priced_at_the_providers_discount() -> None:
    def price(llm: dict[str, Any]) -> Any:
        return presets.pricing_for_spec({"analyzer": "llm", "llm": llm})

    for provider in ("openai", "novita"):
        sync, batch = price({"provider": provider}), price({"provider": provider, "mode": "batch"})
        assert batch.prompt_per_1k == pytest.approx(sync.prompt_per_1k / 2)
        assert batch.completion_per_1k == pytest.approx(sync.completion_per_1k / 2)
    custom = {"provider": "custom", "baseURL": "http://h/v1", "model": "m",
              "pricing": {"promptPerMillion": 1.0, "completionPerMillion": 2.0}}  # fmt: skip
    # No discount known for a custom server: its spec.llm.pricing is the lane's price.
    assert price(custom | {"mode": "batch"}) == price(custom)
    novita = presets.resolve(LLMOptions.model_validate({"provider": "novita", "mode": "batch"}))
    assert (novita.batch_window, novita.batch_base_url) == (
        "48h",
        "https://api.novita.ai/openai/v1",
    )


def test_the_status_text_shows_the_batches_and_the_batch_estimate() -> None:
    from analyzer_runtime.contract.wording import render_status_text

    text = render_status_text(
        {
            "phase": "Running",
            "llmBatches": batch_status.render(_summary(completed=2, in_progress=1, submitting=1)),
            "estimate": {"requests": 40, "tokens": {"total": 9000}, "cost": 0.01,
                         "duration": "24h0m0s", "completionWindow": "24h"},
        }
    )  # fmt: skip
    assert "Batches:    4 (2 in flight, 2 collected); requests 25/30 answered, 3 failed" in text
    assert "~24h0m0s (batch: within its 24h window, at the batch price)" in text


def test_packs_are_split_into_input_files_of_at_most_max_bytes() -> None:
    assert batch_lane.split_by_size([40, 40, 30, 90, 10], 100) == [[0, 1], [2], [3, 4]]
    assert batch_lane.split_by_size([150, 10], 100) == [[0], [1]]  # too big: alone
    assert batch_lane.split_by_size([], 100) == []
