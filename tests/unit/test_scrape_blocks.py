"""Genius behind Cloudflare and Spotify's post-2024 API, the pure parts: challenge
detection, the match without popularity, the blocked count, the notes and the
SpotifyUnavailable condition in the status (validated against the CRD's model)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rap_devtools.fake_genius.cloudflare import challenge_page

from analyzer_runtime.contract import load_scrape_manifest
from analyzer_runtime.contract.scrape_status import (
    AUDIO_FEATURES_OFF,
    SPOTIFY_CONDITION,
    SPOTIFY_UNAVAILABLE,
    Note,
    ScrapeCounters,
    scrape_fields,
    spotify_condition,
)
from analyzer_runtime.contract.scrape_status_model import ScrapeJobStatus
from analyzer_runtime.scrape.cloudflare import BROWSER_HEADERS, is_challenge
from analyzer_runtime.scrape.spotify import best_match

PAGE = challenge_page("/Artist-song-lyrics")
LYRICS = '<html><div data-lyrics-container="true">Yeah</div></html>'
# Cloudflare injects its JavaScript-detections script into ordinary pages too.
INJECTED = LYRICS + '<script src="/cdn-cgi/challenge-platform/scripts/jsd/main.js"></script>'


@pytest.mark.parametrize(
    ("status", "headers", "text", "want"),
    [
        (403, {"cf-mitigated": "challenge"}, "", True),  # the documented signal
        (200, {"cf-mitigated": "challenge"}, "", True),
        (403, {}, PAGE, True),  # the interstitial without the header
        (503, {}, "<script>window._cf_chl_opt={}</script>", True),
        (429, {}, "<script src='/cdn-cgi/challenge-platform/h/g/x'></script>", True),
        (200, {}, PAGE, True),  # the 200 "Just a moment..." variant
        (200, {}, LYRICS, False),
        (200, {}, INJECTED, False),
        (200, {}, "<html><title>Just a moment...</title>" + LYRICS, False),
        (403, {}, "<html>Forbidden</html>", False),
        (404, {}, "<html>Page not found</html>", False),
        (503, {}, "upstream connect error", False),
    ],
)
def test_cloudflare_challenges_are_recognised(
    status: int, headers: dict[str, str], text: str, want: bool
) -> None:
    assert is_challenge(status, headers, text) is want


def test_song_pages_are_asked_for_like_a_browser() -> None:
    assert BROWSER_HEADERS["User-Agent"].startswith("Mozilla/5.0")
    assert "text/html" in BROWSER_HEADERS["Accept"]


def _track(i: int, name: str, album: str, released: str, dur: int, pop: int | None = None) -> Any:
    t: dict[str, Any] = {"id": f"t{i}", "name": name, "artists": [{"name": "A"}],
                         "album": {"name": album, "release_date": released}, "duration_ms": dur}  # fmt: skip
    if pop is not None:
        t["popularity"] = pop
    return t


def test_without_popularity_the_match_uses_album_year_name_and_duration() -> None:
    a = _track(0, "Song - Remastered", "Best Of", "2015-01-01", 200_000)
    b = _track(1, "Song", "The Album", "2010-05-05", 201_000)
    c = _track(2, "Song", "Other", "2012-01-01", 180_000)
    assert best_match([a, b, c], "Song", album="The Album", year=2010)["id"] == "t1"
    assert best_match([a, c, b], "Song", album=None, year=2012)["id"] == "t2"
    # Nothing known but durations: the recording found most often (a and b agree).
    d = _track(3, "Song", "X", "", 300_000)
    assert best_match([d, a, b], "Song - Remastered")["id"] == "t0"
    assert best_match([d, b, a], "Song")["id"] == "t1"
    # With popularity (extended-mode apps) the most popular still wins.
    p = [_track(0, "Song", "X", "", 1, pop=10), _track(1, "Song", "The Album", "2010", 1, pop=50)]
    assert best_match(p, "Song", album="X")["id"] == "t1"


def test_audio_features_default_off() -> None:
    m = load_scrape_manifest(
        {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "ScrapeJob",
         "metadata": {"name": "sj", "namespace": "ns"},
         "spec": {"artists": ["A"], "genius": {"tokenSecretRef": {"name": "g", "key": "t"}},
                  "spotify": {"clientIdSecretRef": {"name": "s", "key": "i"},
                              "clientSecretSecretRef": {"name": "s", "key": "s"}}}}
    )  # fmt: skip
    assert m.spec.spotify is not None and m.spec.spotify.audio_features is False


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_status_counts_blocked_songs_and_reports_spotify_notes() -> None:
    counters = [
        ScrapeCounters(0, songs_found=10, tracks_new=6, songs_failed=4, songs_blocked=3),
        ScrapeCounters(1, songs_found=5, tracks_new=5, songs_failed=1, songs_blocked=1),
    ]
    notes = {
        SPOTIFY_UNAVAILABLE: Note(SPOTIFY_UNAVAILABLE, 1, "refused (HTTP 403)", T0, True),
        AUDIO_FEATURES_OFF: Note(AUDIO_FEATURES_OFF, 0, "403 on audio-features", T0, False),
    }
    base = {"total": 2, "processed": 2, "failed": 0, "skipped": 0, "phase": "Succeeded"}
    out = scrape_fields(base, counters, spotify=True, notes=notes)
    assert (out["blocked"], out["songFailures"], out["songsSkipped"]) == (4, 5, 0)
    assert out["spotify"] == {"matched": 0, "missed": 0, "unavailable": "refused (HTTP 403)",
                              "audioFeaturesOff": "403 on audio-features"}  # fmt: skip
    cond = spotify_condition(notes, generation=3, since=T0)
    assert cond == {"type": SPOTIFY_CONDITION, "status": "True", "reason": "SpotifyRefused",
                    "message": "refused (HTTP 403)", "lastTransitionTime": "2026-03-01T12:00:00Z",
                    "observedGeneration": 3}  # fmt: skip
    ok = spotify_condition({}, generation=1, since=T0)
    assert (ok["status"], ok["reason"]) == ("False", "SpotifyAvailable")
    ScrapeJobStatus.model_validate(base | out | {"conditions": [cond]})
    plain = scrape_fields(base, counters, spotify=True)
    assert plain["spotify"] == {"matched": 0, "missed": 0}
