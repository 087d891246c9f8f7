"""The fake provider's Batch and Files APIs through the real openai SDK
(AsyncOpenAI.files / .batches): the lifecycle OpenAI documents, lines answered as the
synchronous endpoint answers them, partial failure, expiry and cancel with partial
output, validation failures, and listing with pagination (fake_llm/batches.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types import Batch
from rap_devtools.fake_llm import FakeLLM, expected
from rap_devtools.waiting import wait_for_async

from tests.integration.llm.support import API_KEY, MODEL

URL = "/v1/chat/completions"
DONE = ("completed", "failed", "expired", "cancelled")
LIFECYCLE = ["validating", "in_progress", "finalizing", "completed"]
WORDS = "love money pain struggle party fame gun broke dream alone".split()


@pytest.fixture
async def client(fake: FakeLLM) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=fake.url, api_key=API_KEY, max_retries=0) as c:
        yield c


def track(i: int, marker: str = "") -> dict[str, Any]:
    words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(i % 4 + 2))
    return {"id": f"k{i}", "title": f"T{i}", "artist": f"A{i}", "lyrics": f"{words} {i} {marker}"}


def body(t: dict[str, Any], model: str = MODEL) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "Label each track as JSON."},
            {"role": "user", "content": json.dumps({"tracks": [t]})},
        ],
        "max_tokens": 800,
    }


def line(custom_id: str, t: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": URL, "body": body(t), **over}


async def upload(client: AsyncOpenAI, lines: list[dict[str, Any]]) -> str:
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    f = await client.files.create(file=("batch.jsonl", data), purpose="batch")
    assert f.purpose == "batch" and f.bytes == len(data) and f.id.startswith("file-")
    return f.id


async def submit(client: AsyncOpenAI, lines: list[dict[str, Any]], **kw: Any) -> Batch:
    file_id = await upload(client, lines)
    b = await client.batches.create(
        input_file_id=file_id, endpoint=URL, completion_window=kw.pop("window", "24h"), **kw
    )
    assert b.status == "validating" and b.input_file_id == file_id
    return b


async def settle(client: AsyncOpenAI, batch_id: str, seen: list[str] | None = None) -> Batch:
    """Poll until the batch is done, noting each status seen in order."""

    async def done() -> Batch | None:
        b = await client.batches.retrieve(batch_id)
        if seen is not None and (not seen or seen[-1] != b.status):
            seen.append(b.status)
        return b if b.status in DONE else None

    return await wait_for_async(done, within=30, interval=0.02, what=f"batch {batch_id} done")


async def lines_of(client: AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = (await client.files.content(file_id)).text
    return [json.loads(x) for x in text.splitlines()]


async def files_match_counts(client: AsyncOpenAI, b: Batch) -> tuple[list[Any], list[Any]]:
    """The batch's output and error lines, checked against its request_counts."""
    out = await lines_of(client, b.output_file_id)
    err = await lines_of(client, b.error_file_id)
    assert b.request_counts is not None
    assert (len(out), len(err)) == (b.request_counts.completed, b.request_counts.failed)
    assert len(out) + len(err) == b.request_counts.total
    return out, err


async def test_a_batch_runs_its_lifecycle_and_answers_each_line_as_the_sync_endpoint(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.configure(batch_seconds=1.0, batch_validate_seconds=0.5, batch_finalize_seconds=0.5)
    tracks = [track(i) for i in range(12)]
    lines = [line(f"item-{i}", t) for i, t in enumerate(tracks)]
    b = await submit(client, lines, metadata={"run": "r1", "shard": "0"})
    seen: list[str] = []
    b = await settle(client, b.id, seen)

    assert seen == LIFECYCLE, seen
    assert b.status == "completed" and b.model == MODEL and b.errors is None
    assert b.metadata == {"run": "r1", "shard": "0"}
    assert b.request_counts is not None
    assert (b.request_counts.total, b.request_counts.completed, b.request_counts.failed) == (
        12, 12, 0)  # fmt: skip
    assert b.error_file_id is None
    assert b.in_progress_at and b.finalizing_at and b.completed_at
    assert b.created_at <= b.in_progress_at <= b.finalizing_at <= b.completed_at
    assert b.expires_at == b.created_at + 24 * 3600

    out, _ = await files_match_counts(client, b)
    ids = [x["custom_id"] for x in out]
    assert sorted(ids) == sorted(x["custom_id"] for x in lines)  # every line once
    assert ids != [x["custom_id"] for x in lines]  # "may not match the input order"
    by_id = {x["custom_id"]: x for x in out}
    usage = {"input": 0, "output": 0}
    for i, t in enumerate(tracks):
        got = by_id[f"item-{i}"]
        assert got["id"].startswith("batch_req_") and got["error"] is None
        assert got["response"]["status_code"] == 200
        answer = got["response"]["body"]
        assert answer["object"] == "chat.completion"
        content = json.loads(answer["choices"][0]["message"]["content"])
        assert content == {"results": [expected(t)]}
        sync = await client.chat.completions.create(**body(t))
        assert sync.choices[0].message.content == answer["choices"][0]["message"]["content"]
        assert sync.usage is not None
        assert sync.usage.prompt_tokens == answer["usage"]["prompt_tokens"]
        assert sync.usage.completion_tokens == answer["usage"]["completion_tokens"]
        usage["input"] += answer["usage"]["prompt_tokens"]
        usage["output"] += answer["usage"]["completion_tokens"]
    assert b.usage is not None
    assert (b.usage.input_tokens, b.usage.output_tokens) == (usage["input"], usage["output"])
    assert b.usage.total_tokens == usage["input"] + usage["output"]

    logged = [e for e in fake.log() if e.get("batch") == b.id]
    assert sorted(e["custom_id"] for e in logged) == sorted(ids)
    assert all(e["status"] == 200 and e["usage"]["prompt"] > 0 for e in logged)
    assert len(fake.creations(run="r1", shard="0")) == 1


async def test_failed_lines_go_to_the_error_file_and_a_resubmission_draws_again(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.configure(batch_seconds=0.2)
    always, once = track(0, "@@BATCH_FAIL@@"), track(1, "@@BATCH_FAIL_ONCE@@")
    lines = [line("always", always), line("once", once)]
    lines += [line(f"ok-{i}", track(i)) for i in range(2, 8)]
    b = await settle(client, (await submit(client, lines)).id)

    assert b.status == "completed"
    out, err = await files_match_counts(client, b)
    assert sorted(x["custom_id"] for x in err) == ["always", "once"]
    for x in err:
        assert x["error"] is None  # an HTTP failure: the status and body say what
        assert x["response"]["status_code"] == 500
        assert x["response"]["body"]["error"]["type"] == "server_error"
    assert sorted(x["custom_id"] for x in out) == [f"ok-{i}" for i in range(2, 8)]

    again = await settle(client, (await submit(client, lines[:2])).id)
    out, err = await files_match_counts(client, again)
    assert [x["custom_id"] for x in err] == ["always"]
    assert [x["custom_id"] for x in out] == ["once"]


async def test_a_fraction_of_lines_fails_and_the_counts_match_the_files(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.configure(batch_seconds=0.2, batch_fail_lines=0.5, batch_fail_status=503)
    lines = [line(f"c{i}", track(i)) for i in range(40)]
    b = await settle(client, (await submit(client, lines)).id)
    assert b.status == "completed", b.errors
    out, err = await files_match_counts(client, b)
    assert 8 <= len(err) <= 32  # ~20 of 40 at p = 0.5
    assert {x["response"]["status_code"] for x in err} == {503}
    assert {x["custom_id"] for x in out} | {x["custom_id"] for x in err} == {
        x["custom_id"] for x in lines}  # fmt: skip


async def test_a_batch_expires_with_what_it_finished_in_the_output_file(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.configure(batch_seconds=0.3, batch_expire_after=3, batch_expire_batches=1)
    lines = [line(f"c{i}", track(i)) for i in range(10)]
    b = await settle(client, (await submit(client, lines)).id)

    assert b.status == "expired" and b.expired_at and b.completed_at is None
    out, err = await files_match_counts(client, b)
    assert len(out) == 3 and len(err) == 7
    for x in err:
        assert x["response"] is None
        assert x["error"]["code"] == "batch_expired"
        assert "completion window expired" in x["error"]["message"]
    assert {x["custom_id"] for x in out} | {x["custom_id"] for x in err} == {
        x["custom_id"] for x in lines}  # fmt: skip

    # batch_expire_batches=1: the resubmission of the expired lines completes
    retry = [x for x in lines if x["custom_id"] in {e["custom_id"] for e in err}]
    again = await settle(client, (await submit(client, retry)).id)
    assert again.status == "completed"
    out, _ = await files_match_counts(client, again)
    assert len(out) == 7


async def test_the_window_runs_out_and_the_admin_can_expire_a_batch(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.configure(batch_seconds=60.0, batch_window_seconds=1.0)
    lines = [line(f"c{i}", track(i)) for i in range(50)]
    b = await settle(client, (await submit(client, lines)).id)
    assert b.status == "expired"
    assert b.expires_at == b.created_at + 1
    out, err = await files_match_counts(client, b)
    assert len(err) > 0 and all(x["error"]["code"] == "batch_expired" for x in err)

    fake.configure(batch_window_seconds=None)
    b = await submit(client, lines)

    async def started() -> bool:
        got = await client.batches.retrieve(b.id)
        return got.request_counts is not None and got.request_counts.completed >= 1

    await wait_for_async(started, within=30, interval=0.05, what="a line done")
    fake.batch_admin(b.id, expire=True)
    b = await settle(client, b.id)
    assert b.status == "expired"
    out, err = await files_match_counts(client, b)
    assert len(out) >= 1 and len(err) >= 1


async def test_cancel_keeps_the_lines_finished_so_far(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.configure(batch_seconds=8.0, batch_cancel_seconds=0.3)
    lines = [line(f"c{i}", track(i)) for i in range(40)]
    b = await submit(client, lines)

    async def two_done() -> bool:
        got = await client.batches.retrieve(b.id)
        return got.request_counts is not None and got.request_counts.completed >= 2

    await wait_for_async(two_done, within=30, interval=0.05, what="two lines done")
    cancelling = await client.batches.cancel(b.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    seen: list[str] = []
    b = await settle(client, b.id, seen)
    assert seen[0] == "cancelling" and b.status == "cancelled" and b.cancelled_at
    out, err = await files_match_counts(client, b)
    assert len(out) >= 2 and len(err) >= 1
    assert all(x["error"]["code"] == "batch_cancelled" for x in err)
    with pytest.raises(openai.ConflictError):
        await client.batches.cancel(b.id)


async def test_a_paused_batch_stays_where_it_is_until_released(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.configure(batch_seconds=2.0, batch_validate_seconds=0.0, batch_finalize_seconds=0.0)
    lines = [line(f"c{i}", track(i)) for i in range(10)]
    b = await submit(client, lines)

    async def started() -> bool:
        got = await client.batches.retrieve(b.id)
        return got.request_counts is not None and got.request_counts.completed >= 1

    await wait_for_async(started, within=30, interval=0.02, what="a line done")
    fake.batch_admin(b.id, pause=True)
    control = await settle(client, (await submit(client, lines)).id)  # as long, not paused
    assert control.status == "completed"
    held = await client.batches.retrieve(b.id)
    assert held.status == "in_progress"
    assert held.request_counts is not None and held.request_counts.completed < 10
    assert fake.batches()["data"][1]["admin"]["paused"] is True
    fake.batch_admin(b.id, pause=False)
    assert (await settle(client, b.id)).status == "completed"


async def test_batches_created_paused_wait_in_validating(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.configure(batch_paused=True, batch_validate_seconds=0.0, batch_seconds=0.1)
    lines = [line(f"c{i}", track(i)) for i in range(3)]
    held = await submit(client, lines)
    fake.configure(batch_paused=False)
    control = await settle(client, (await submit(client, lines)).id)
    assert control.status == "completed"
    assert (await client.batches.retrieve(held.id)).status == "validating"
    fake.batch_admin(held.id, pause=False)
    assert (await settle(client, held.id)).status == "completed"


@pytest.mark.parametrize(
    ("lines", "code", "line_no"),
    [
        ([line("a", track(0)), line("a", track(1))], "duplicate_custom_id", 2),
        ([line("a", track(0)), line("b", track(1), url="/v1/completions")], "url_mismatch", 2),
        ([line("a", track(0)), line("b", track(1), body=body(track(1), "other"))],
         "model_mismatch", 2),
    ],
)  # fmt: skip
async def test_an_invalid_file_fails_the_batch_at_validation(
    fake: FakeLLM,
    client: AsyncOpenAI,
    lines: list[dict[str, Any]],
    code: str,
    line_no: int,
) -> None:
    seen: list[str] = []
    b = await settle(client, (await submit(client, lines)).id, seen)
    assert seen[-1] == "failed" and "in_progress" not in seen
    assert b.failed_at and b.output_file_id is None and b.error_file_id is None
    assert b.errors is not None and b.errors.data is not None
    assert [(e.code, e.line) for e in b.errors.data] == [(code, line_no)]
    assert b.request_counts is not None and b.request_counts.total == 0


async def test_too_many_requests_and_a_forced_validation_failure(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.configure(batch_max_requests=3)
    b = await settle(client, (await submit(client, [line(f"c{i}", track(i)) for i in range(4)])).id)
    assert b.status == "failed" and b.errors and b.errors.data
    assert [e.code for e in b.errors.data] == ["too_many_tasks"]

    fake.configure(batch_max_requests=50_000, batch_fail_validation="token_limit_exceeded")
    b = await settle(client, (await submit(client, [line("c0", track(0))])).id)
    assert b.status == "failed" and b.errors and b.errors.data
    assert [e.code for e in b.errors.data] == ["token_limit_exceeded"]


async def test_requests_refused_when_created(fake: FakeLLM, client: AsyncOpenAI) -> None:
    file_id = await upload(client, [line("a", track(0))])
    with pytest.raises(openai.BadRequestError):  # OpenAI accepts only "24h"
        # openai's types allow only "24h"; the fake serves Novita's "48h" too
        await client.batches.create(input_file_id=file_id, endpoint=URL, completion_window="48h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        await client.batches.create(
            input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError):
        await client.batches.create(
            input_file_id=file_id, endpoint=URL, completion_window="24h",
            metadata={f"k{i}": "v" for i in range(17)},
        )  # fmt: skip
    with pytest.raises(openai.NotFoundError):
        await client.batches.create(
            input_file_id="file-nope", endpoint=URL, completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError):  # the Batch API takes .jsonl files only
        await client.files.create(file=("batch.json", b"{}"), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        await client.batches.retrieve("batch_nope")
    assert [op["status"] for op in fake.batches()["operations"] if op["op"] == "batches.create"] == [
        400, 400, 400, 404]  # fmt: skip


async def test_novita_s_48h_window(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.configure(batch_windows=["48h"])
    file_id = await upload(client, [line("a", track(0))])
    with pytest.raises(openai.BadRequestError):
        await client.batches.create(input_file_id=file_id, endpoint=URL, completion_window="24h")
    b = await client.batches.create(
        input_file_id=file_id,
        endpoint=URL,
        # openai's types allow only "24h"; the fake serves Novita's "48h" too
        completion_window="48h",  # type: ignore[arg-type]
    )
    assert b.completion_window == "48h" and b.expires_at == b.created_at + 48 * 3600
    assert (await settle(client, b.id)).status == "completed"


async def test_list_pages_newest_first_and_finds_a_batch_by_metadata(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    file_id = await upload(client, [line("a", track(0))])
    made = [
        await client.batches.create(input_file_id=file_id, endpoint=URL, completion_window="24h",
                                    metadata={"run": "r9", "shard": str(i)})
        for i in range(5)
    ]  # fmt: skip
    newest_first = [b.id for b in reversed(made)]

    first = await client.batches.list(limit=2)
    assert [b.id for b in first.data] == newest_first[:2]
    assert first.has_more and first.first_id == newest_first[0]
    assert first.last_id == newest_first[1]
    second = await client.batches.list(limit=2, after=first.last_id)
    assert [b.id for b in second.data] == newest_first[2:4] and second.has_more
    last = await client.batches.list(limit=2, after=second.last_id)
    assert [b.id for b in last.data] == newest_first[4:] and not last.has_more

    every = [b async for b in client.batches.list(limit=2)]  # the SDK follows has_more
    assert [b.id for b in every] == newest_first
    found = [b.id for b in every if (b.metadata or {}).get("shard") == "3"]
    assert found == [made[3].id]
    assert len(fake.creations(run="r9")) == 5 and len(fake.creations(shard="3")) == 1


async def test_files_can_be_read_listed_and_deleted(fake: FakeLLM, client: AsyncOpenAI) -> None:
    file_id = await upload(client, [line("a", track(0))])
    f = await client.files.retrieve(file_id)
    assert f.filename == "batch.jsonl"
    content = (await client.files.content(file_id)).text
    assert json.loads(content.splitlines()[0])["custom_id"] == "a"
    assert [x.id async for x in client.files.list(purpose="batch")] == [file_id]
    deleted = await client.files.delete(file_id)
    assert deleted.deleted and deleted.id == file_id
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(file_id)


async def test_the_key_is_required_and_a_provider_down_refuses(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    async with AsyncOpenAI(base_url=fake.url, api_key="sk-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.files.create(file=("batch.jsonl", b"{}\n"), purpose="batch")
        with pytest.raises(openai.AuthenticationError):
            await wrong.batches.list()
    fake.configure(down=True)
    with pytest.raises(openai.InternalServerError):
        await client.batches.list()
    fake.configure(down=False, rate_limit=1, always_429=True)  # the sync pool's limits
    assert (await client.batches.list()).data == []
