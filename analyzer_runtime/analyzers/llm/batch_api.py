"""The provider's Files and Batches API, through the openai SDK (the batch lane's I/O).

Few calls per batch (an upload, a create, a poll every pollSeconds, two downloads),
outside the run's request budget, which is for chat requests: the SDK's own retries
(exponential backoff on connection errors, 408/409/429/5xx) are enough here, and a
call that still fails is tried again at the next poll (batch_shard.py).

`find` is how a batch is never created twice: a batch is created with the ledger
row's id in its metadata, so after a crash between the create and recording its id,
the list of batches (newest first) is searched for that id - back to a little before
the row was recorded, not the whole account's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import openai
from openai.types import Batch

from analyzer_runtime.analyzers.llm.batch_lane import ENDPOINT
from analyzer_runtime.contract.llm_presets import ResolvedLLM

# Metadata keys of the batches this lane creates.
RUN_KEY = "rap_run"
BATCH_KEY = "rap_batch"
SDK_RETRIES = 3
# How far before the ledger row's time a batch may have been created (clock skew).
FIND_SLACK_SECONDS = 600
FIND_PAGE = 100


class BatchAPI:
    def __init__(self, resolved: ResolvedLLM, *, api_key: str | None, timeout: float) -> None:
        self.sdk = openai.AsyncOpenAI(
            api_key=api_key or "not-needed",
            base_url=resolved.batch_base_url or resolved.base_url,
            max_retries=SDK_RETRIES,
            timeout=max(timeout, 60.0),  # files of up to 50,000 requests
        )

    async def aclose(self) -> None:
        await self.sdk.close()

    async def upload(self, name: str, data: bytes) -> str:
        f = await self.sdk.files.create(file=(name, data), purpose="batch")
        return f.id

    async def create(self, input_file_id: str, window: str, metadata: dict[str, str]) -> Batch:
        return await self.sdk.batches.create(
            input_file_id=input_file_id,
            endpoint=ENDPOINT,
            # openai's types allow only "24h" (OpenAI's window); Novita's is "48h".
            completion_window=window,  # type: ignore[arg-type]
            metadata=metadata,
        )

    async def find(self, metadata: dict[str, str], since: datetime) -> Batch | None:
        """The batch created with `metadata`, looking back to `since` (minus a slack)."""
        floor = since.timestamp() - FIND_SLACK_SECONDS
        async for b in self.sdk.batches.list(limit=FIND_PAGE):
            if b.metadata and all(b.metadata.get(k) == v for k, v in metadata.items()):
                return b
            if b.created_at < floor:
                return None
        return None

    async def retrieve(self, batch_id: str) -> Batch:
        return await self.sdk.batches.retrieve(batch_id)

    async def text(self, file_id: str) -> str:
        content = await self.sdk.files.content(file_id)
        return content.text


def counts(b: Batch) -> dict[str, Any]:
    rc = b.request_counts
    if rc is None:
        return {}
    return {"total": rc.total, "completed": rc.completed, "failed": rc.failed}


def errors_of(b: Batch) -> str | None:
    """A failed batch's validation errors, in one line."""
    errs = getattr(b.errors, "data", None) or []
    parts = [f"{e.code or 'error'}: {e.message or ''}".strip() for e in errs[:3]]
    return "; ".join(parts) or None
