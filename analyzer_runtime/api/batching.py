"""`EmbedBatcher`: the queries of concurrent requests embedded together, in one thread.

Under load the cost of a search is the query's embedding (a NumPy BERT pass; the
index answers in milliseconds). Embedding each query in its own thread of the default
executor ran up to six passes at once on two cores, each holding the GIL between its
BLAS calls, so the event loop itself (and /readyz with it) waited seconds for a turn.
Here one thread embeds, and whatever queued up while it was busy goes in the next
call as one batch: one forward pass over 32 short queries costs far less than 32
passes, and the event loop competes with a single thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MAX_BATCH = 32


class EmbedBatcher:
    def __init__(
        self, embed: Callable[[Sequence[str]], Sequence[Any]], max_batch: int = MAX_BATCH
    ) -> None:
        self._embed = embed
        self._max = max_batch
        self._pending: list[tuple[str, asyncio.Future[Any]]] = []
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="embed")
        self.batches = 0  # how many embed calls ran (the tests' view of the batching)

    async def embed(self, text: str) -> Any:
        """The vector of `text`, embedded with whatever else is waiting."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            # A request gone meanwhile (client disconnected) needs no embedding.
            batch = [(t, f) for t, f in batch if not f.done()]
            if not batch:
                continue
            self.batches += 1
            try:
                vectors = await loop.run_in_executor(
                    self._executor, self._embed, [t for t, _ in batch]
                )
            except Exception as exc:  # each waiting request gets the error
                for _, f in batch:
                    if not f.done():
                        f.set_exception(exc)
                continue
            for (_, f), v in zip(batch, vectors, strict=True):
                if not f.done():
                    f.set_result(v)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
