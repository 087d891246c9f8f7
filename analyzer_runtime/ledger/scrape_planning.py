"""Planning a ScrapeJob: its artists become the run's work items (shard_ledger.record_plan).

Item `i` is the i-th distinct artist (in the order given), its payload the name.
Names are de-duplicated (compared like Genius names: case and spacing ignored), so
one artist is never scraped twice by the same job. Planning the same uid again is a
no-op, exactly as for an AnalysisRun.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from analyzer_runtime.contract.scrape_models import SCRAPE_KIND, ScrapeJobManifest, normalize_name
from analyzer_runtime.ledger import shards as shard_ledger


def distinct_artists(names: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        key = normalize_name(name)
        if key and key not in seen:
            seen.add(key)
            out.append(name.strip())
    return out


async def plan_scrape(
    conn: asyncpg.Connection, manifest: ScrapeJobManifest, uid: str, artists: Sequence[str]
) -> shard_ledger.PlanResult:
    """Plan once per uid. `artists` is spec.artists, or the list read from the
    ConfigMap of spec.artistsFrom (the plan keeps it: pods never read the ConfigMap)."""
    existing = await shard_ledger.find_run(conn, uid)
    if existing is not None:
        return shard_ledger.PlanResult(existing, created=False)
    names = distinct_artists(artists)
    return await shard_ledger.record_plan(
        conn,
        uid=uid,
        name=manifest.metadata.name,
        namespace=manifest.metadata.namespace,
        kind=SCRAPE_KIND,
        spec=manifest.spec.dump(),
        shards=manifest.spec.shards,
        analyzer_type=None,
        model_version=None,
        item_ids=list(range(len(names))),
        payloads=names,
    )
