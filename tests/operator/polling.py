"""Waiting in the run-loop tests: poll a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(cond: Callable[[], object], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 5.0
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.01)
