"""Sweep the ledger of runs whose resource is gone.

The DELETED watch event marks a run cancelled (handlers.py), but a deletion the
operator never saw - the run deleted while the operator was stopped, or between two
watches - would leave the run active in the ledger, and every later run over the
same tracks would wait in `OverlapsRun` for ever. So the ledger is swept as well:

- every database the operator knows (its own, and each one a run of it uses: see
  `database.known_urls`) as soon as it comes to know it - at start for its own - and
  then every `sweep_interval` seconds;
- at once when planning a run overlaps a run whose resource is gone (reconcile.py
  cancels it and plans again in the same pass).

Only runs an operator drives are looked at (`shard_ledger.operator_runs`: planned for a
namespace, no local driver); a run of a namespace this operator does not watch is
left to the operator that does. A run is gone when a GET of its kind, namespace and
name answers 404, or answers an object with another uid (deleted and re-created
under the same name). Any other answer (403, the API server down) leaves it alone.
The cancel is the DELETED handler's: `shard_ledger.set_run_state(..., "cancelled")`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import asyncpg
from kubernetes_asyncio.client.exceptions import ApiException

from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.connect import host_of
from rap_operator import database, kinds, kube
from rap_operator.config import OperatorConfig

log = logging.getLogger(__name__)
# How often the sweeper looks for databases that are due (new ones are swept then).
TICK_SECONDS = 2.0
# Called with the uid of each run the sweep cancelled (handlers.py forgets its loop).
on_cancelled: list[Callable[[str], None]] = []


def sweepable(run: shard_ledger.Run, config: OperatorConfig) -> bool:
    """Whether this operator may sweep `run`: planned for a resource (a namespace),
    driven by no local runner, of a kind it reconciles, in a namespace it watches."""
    return (
        run.state == "planned"
        and run.driver is None
        and bool(run.namespace)
        and run.kind in kinds.registry()
        and (not config.namespaces or run.namespace in config.namespaces)
    )


def gone(run: shard_ledger.Run, resource: Mapping[str, Any] | None) -> bool:
    """Whether the run's resource no longer exists: nothing of that name (404), or an
    object re-created under the same name (another uid)."""
    if resource is None:
        return True
    return (resource.get("metadata") or {}).get("uid") != run.uid


def due(urls: Iterable[str], swept: Mapping[str, float], now: float, interval: float) -> list[str]:
    """The databases to sweep now: never swept, or swept `interval` seconds ago."""
    return [u for u in urls if now - swept.get(u, -math.inf) >= interval]


async def cancel_if_gone(
    conn: asyncpg.Connection, run: shard_ledger.Run, config: OperatorConfig
) -> bool:
    """Cancel `run` in the ledger when its resource is gone; returns whether it did."""
    if not sweepable(run, config):
        return False
    assert run.namespace is not None
    plural = kinds.registry()[run.kind].plural
    try:
        resource = await kube.read_run(plural, run.namespace, run.name)
    except ApiException as exc:
        log.warning("sweep: cannot read %s %s/%s (%s)", run.kind, run.namespace, run.name, exc)
        return False
    if not gone(run, resource):
        return False
    await shard_ledger.set_run_state(conn, run.id, "cancelled")
    log.info(
        "sweep: %s %s/%s (uid %s) no longer exists; its run is marked cancelled in the ledger",
        run.kind, run.namespace, run.name, run.uid,
    )  # fmt: skip
    for forget in on_cancelled:
        forget(run.uid)
    return True


async def sweep_database(url: str, config: OperatorConfig) -> list[str]:
    """Cancel the runs of one database whose resource is gone; their uids."""
    pool = await database.pool(url)
    async with database.acquire(pool) as conn:
        return [
            r.uid
            for r in await shard_ledger.operator_runs(conn)
            if await cancel_if_gone(conn, r, config)
        ]


async def run_forever(
    config: OperatorConfig, urls: Callable[[], list[str]] = database.known_urls
) -> None:
    """Sweep each known database when it becomes known, then every sweep_interval."""
    swept: dict[str, float] = {}
    while True:
        for url in due(urls(), swept, time.monotonic(), config.sweep_interval):
            swept[url] = time.monotonic()  # a failed sweep is tried again next interval
            try:
                await sweep_database(url, config)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sweep of the database at %s failed: %s", host_of(url), exc)
        await asyncio.sleep(TICK_SECONDS)
