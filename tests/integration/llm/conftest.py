"""Fixtures of the llm analyzer's integration tests (the fake provider, see support.py)."""

from tests.integration.llm.support import fake, fake_server  # noqa: F401
