"""A ScrapeJob's status: the common run status (analyzer_runtime.contract.status, items =
artists) plus what scraping found, summed from the per-shard scrape counters
(O(shards)). Pure: the operator and the tests call it with the rows the ledger reads
(ledger/scrape_store.py), of the types defined here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analyzer_runtime.contract.wording import format_time

SPOTIFY_CONDITION = "SpotifyUnavailable"


@dataclass(frozen=True, slots=True)
class ScrapeCounters:
    """One row of scrape_counters (zeros for a shard that has not committed yet)."""

    shard: int
    songs_found: int = 0
    tracks_new: int = 0
    tracks_updated: int = 0
    duplicates: int = 0
    songs_skipped: int = 0
    songs_failed: int = 0
    non_songs: int = 0
    spotify_matched: int = 0
    spotify_missed: int = 0
    songs_blocked: int = 0  # of songs_failed: blocked by a Cloudflare challenge


# ---- notes: what a shard learned once per run, reported once (ledger/scrape_store.py)

SPOTIFY_UNAVAILABLE = "spotify_unavailable"
AUDIO_FEATURES_OFF = "audio_features_off"
GENIUS_BLOCKED = "genius_blocked"


@dataclass(frozen=True, slots=True)
class Note:
    kind: str
    shard: int
    message: str
    recorded_at: datetime
    announced: bool


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
