"""Steps of a shard's work loop that every loop shares (the analysis worker, its
batch lane, the scrape worker): reading the claimed tracks, finishing or waiting
when nothing is claimable, and why an item that kept crashing is failed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.ledger import shards as shard_ledger

if TYPE_CHECKING:
    from analyzer_runtime.worker import StopFlag

# How often a shard with nothing claimable looks again while another claimer holds
# its last items.
LEASE_POLL_SECONDS = 1.0


async def fetch_tracks(conn: asyncpg.Connection, ids: Sequence[int]) -> dict[int, TrackInput]:
    rows = await conn.fetch(
        "SELECT id, title, artist, lyrics FROM tracks WHERE id = ANY($1::int[])", list(ids)
    )
    return {r["id"]: TrackInput(r["id"], r["title"], r["artist"], r["lyrics"]) for r in rows}


async def finish_or_wait(conn: asyncpg.Connection, run_id: int, shard: int, stop: StopFlag) -> bool:
    """Nothing was claimable: mark the shard done if nothing is pending (True), else
    the pending items are leased to another claimer - wait a little for it to finish
    them, or for its lease to expire if it died (False: claim again)."""
    if await shard_ledger.finish_shard(conn, run_id, shard):
        return True
    wait = await shard_ledger.seconds_to_next_lease(conn, run_id, shard)
    await stop.pause(min(max(wait or 0.0, 0.05), LEASE_POLL_SECONDS))
    return False


def gave_up(max_attempts: int, doing: str) -> str:
    """Why an item that crashed its process `max_attempts` times is failed."""
    return (
        f"gave up after {max_attempts} attempts: the process died while {doing} it"
        " (each time its lease expired unfinished)"
    )
