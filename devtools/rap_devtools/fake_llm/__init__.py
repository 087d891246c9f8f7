"""A fake OpenAI-compatible chat provider for tests and benchmarks (see server.py),
and `FakeLLM`, which runs it as a separate process and drives its admin API."""

from __future__ import annotations

from typing import Any

from rap_devtools.fake_llm.answers import FORGED, expected, lyrics_digest
from rap_devtools.fake_llm.server import FakeConfig, FakeProvider
from rap_devtools.fake_server import FakeServerProcess

__all__ = ["FORGED", "FakeConfig", "FakeLLM", "FakeProvider", "expected", "lyrics_digest"]


class FakeLLM(FakeServerProcess):
    """The fake provider in its own process, on a free loopback port."""

    module = "rap_devtools.fake_llm"
    name = "fake LLM"
    tmp_prefix = "fake-llm-"
    start_timeout = 30.0

    @property
    def url(self) -> str:
        """The OpenAI base URL (what spec.llm.baseURL takes)."""
        return f"{self.base}/v1"

    def batches(self) -> dict[str, Any]:
        """GET /admin/batches: `data` (every batch, newest first, each with `admin`:
        ordinal, paused, expire_after) and `operations` (each Files/Batch API call)."""
        result: dict[str, Any] = self._call("GET", "/admin/batches")
        return result

    def batch_admin(self, batch_id: str, **changes: bool) -> dict[str, Any]:
        """POST /admin/batches/{id}: expire=True, complete=True, pause=True|False."""
        result: dict[str, Any] = self._call("POST", f"/admin/batches/{batch_id}", changes)
        return result

    def creations(self, **metadata: str) -> list[dict[str, Any]]:
        """The accepted POST /v1/batches whose metadata holds `metadata` (a test of
        "never submitted twice" counts them)."""
        return [
            op
            for op in self.batches()["operations"]
            if op["op"] == "batches.create"
            and op["status"] == 200
            and metadata.items() <= (op.get("metadata") or {}).items()
        ]
