"""A fake OpenAI-compatible chat provider for tests and benchmarks (see server.py),
and `FakeLLM`, which runs it as a separate process and drives its admin API."""

from __future__ import annotations

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
