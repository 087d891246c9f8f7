"""EmbedBatcher (analyzer_runtime/api/batching.py): concurrent queries embedded
together, each request getting its own vector, errors to every waiter."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from analyzer_runtime.api.batching import EmbedBatcher


class Model:
    """Embeds a text as (len, its first character's code); blocks while `gate` is
    clear, so a test decides when the first call may finish (no sleeps)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()

    def embed(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        self.calls.append(list(texts))
        self.entered.set()
        assert self.gate.wait(30)
        if "boom" in texts:
            raise RuntimeError("model failed")
        return [(len(t), ord(t[0])) for t in texts]


async def test_queries_waiting_behind_a_call_go_in_one_batch() -> None:
    model = Model()
    b = EmbedBatcher(model.embed, max_batch=4)
    first = asyncio.create_task(b.embed("a"))
    await asyncio.to_thread(model.entered.wait, 30)
    # Six more arrive while the model is busy with "a": two batches of at most 4.
    rest = [asyncio.create_task(b.embed(t)) for t in ("bb", "ccc", "d", "ee", "f", "gg")]
    await asyncio.sleep(0)  # let them queue (they do not run the model themselves)
    model.gate.set()
    assert await first == (1, ord("a"))
    assert await asyncio.gather(*rest) == [
        (2, ord("b")), (3, ord("c")), (1, ord("d")), (2, ord("e")), (1, ord("f")), (2, ord("g"))
    ]  # fmt: skip
    assert model.calls == [["a"], ["bb", "ccc", "d", "ee"], ["f", "gg"]]
    assert b.batches == 3
    b.close()


async def test_an_error_reaches_every_request_of_its_batch_only() -> None:
    model = Model()
    b = EmbedBatcher(model.embed)
    busy = asyncio.create_task(b.embed("x"))
    await asyncio.to_thread(model.entered.wait, 30)
    doomed = [asyncio.create_task(b.embed(t)) for t in ("boom", "y")]
    await asyncio.sleep(0)
    model.gate.set()
    assert await busy == (1, ord("x"))
    for task in doomed:
        with pytest.raises(RuntimeError, match="model failed"):
            await task
    assert await b.embed("z") == (1, ord("z"))  # the batcher goes on
    b.close()


async def test_a_cancelled_request_is_not_embedded() -> None:
    model = Model()
    b = EmbedBatcher(model.embed)
    busy = asyncio.create_task(b.embed("x"))
    await asyncio.to_thread(model.entered.wait, 30)
    gone = asyncio.create_task(b.embed("gone"))
    kept = asyncio.create_task(b.embed("kept"))
    await asyncio.sleep(0)
    gone.cancel()
    model.gate.set()
    assert await busy == (1, ord("x")) and await kept == (4, ord("k"))
    assert gone.cancelled()
    assert model.calls == [["x"], ["kept"]]
    b.close()
