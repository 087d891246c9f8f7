"""A ScrapeJob's status: the common run status (analyzer_runtime.status, items =
artists) plus what scraping found, summed from the per-shard scrape counters
(O(shards)). Pure: the operator and the tests call it with rows they read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analyzer_runtime.scrape.store import ScrapeCounters


def scrape_fields(
    status: Mapping[str, Any],
    counters: Sequence[ScrapeCounters],
    *,
    spotify: bool,
    failed_artists: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The ScrapeJob-only fields (camelCase), given the common status computed for the
    same refresh. `failedArtists` appears only when some artist failed."""
    finished = sum(int(status.get(k) or 0) for k in ("processed", "failed", "skipped"))

    def total(field: str) -> int:
        return sum(getattr(c, field) for c in counters)

    out: dict[str, Any] = {
        "artists": f"{finished}/{int(status.get('total') or 0)}",
        "songsFound": total("songs_found"),
        "newTracks": total("tracks_new"),
        "updatedTracks": total("tracks_updated"),
        "duplicatesSkipped": total("duplicates"),
        "songsSkipped": total("songs_skipped"),
        "songFailures": total("songs_failed"),
        "nonSongs": total("non_songs"),
    }
    if spotify:
        out["spotify"] = {"matched": total("spotify_matched"), "missed": total("spotify_missed")}
    if failed_artists:
        out["failedArtists"] = [dict(a) for a in failed_artists]
    return out
