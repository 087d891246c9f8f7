"""A ScrapeJob's status: the common run status (analyzer_runtime.contract.status, items =
artists) plus what scraping found, summed from the per-shard scrape counters
(O(shards)). Pure: the operator and the tests call it with rows they read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from analyzer_runtime.contract.wording import format_time
from analyzer_runtime.ledger.scrape_store import (
    AUDIO_FEATURES_OFF,
    SPOTIFY_UNAVAILABLE,
    Note,
    ScrapeCounters,
)

SPOTIFY_CONDITION = "SpotifyUnavailable"


def scrape_fields(
    status: Mapping[str, Any],
    counters: Sequence[ScrapeCounters],
    *,
    spotify: bool,
    failed_artists: Sequence[Mapping[str, str]] = (),
    notes: Mapping[str, Note] | None = None,
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
        "blocked": total("songs_blocked"),
        "nonSongs": total("non_songs"),
    }
    notes = notes or {}
    if spotify:
        sp: dict[str, Any] = {
            "matched": total("spotify_matched"),
            "missed": total("spotify_missed"),
        }
        if (n := notes.get(SPOTIFY_UNAVAILABLE)) is not None:
            sp["unavailable"] = n.message
        if (n := notes.get(AUDIO_FEATURES_OFF)) is not None:
            sp["audioFeaturesOff"] = n.message
        out["spotify"] = sp
    if failed_artists:
        out["failedArtists"] = [dict(a) for a in failed_artists]
    return out


def spotify_condition(
    notes: Mapping[str, Note], *, generation: int, since: datetime
) -> dict[str, Any]:
    """The `SpotifyUnavailable` condition of a job with spec.spotify (same fields as
    analyzer_runtime.contract.status builds): True from the moment a shard found the app
    refused (the note's time, so it never moves), False since `since` otherwise."""
    n = notes.get(SPOTIFY_UNAVAILABLE)
    if n is not None:
        status, reason, message, when = "True", "SpotifyRefused", n.message, n.recorded_at
    else:
        status, reason, when = "False", "SpotifyAvailable", since
        message = "Spotify has not refused the app"
    return {
        "type": SPOTIFY_CONDITION,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(when),
        "observedGeneration": generation,
    }
