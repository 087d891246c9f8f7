"""Spotify enrichment: popularity, explicit flag and audio features into spotify_data.

Client-credentials flow (`POST tokenURL grant_type=client_credentials` with the
client id and secret as HTTP Basic auth; the token is cached until shortly before it
expires and renewed once on a 401). A track is searched by artist and title
(`GET {api}/search?q=track:"T" artist:"A"&type=track`) and a result is accepted only
if its title - without "(feat. ...)", "- Remastered" and the like - equals the
Genius title and one of its artists is the Genius artist (both compared normalized).
Of several acceptable results the most popular wins. No acceptable result is a
*miss*: recorded (spotify_data = {"matched": false, ...}), never an error.

Spotify's Web API as it is since its "Introducing some changes to our Web API"
announcement of 27 Nov 2024 (https://developer.spotify.com/blog/2024-11-27-changes-to-the-web-api)
and the 2026 development-mode restrictions:
- `audio-features` answers 403 for new and development-mode apps. It is off unless
  spec.spotify.audioFeatures is true; when on, the first call is made alone and a
  403 turns the feature off for the rest of this process (`audio_features_off` says
  why, once) - no further audio-features request is sent.
- A development-mode app gets tracks without `popularity`. Several acceptable
  results are then ranked by what is known: popularity when present, the album and
  release year equal to Genius's, the title equal without normalizing, and, among
  the rest, one recording (durations within DURATION_TOLERANCE_MS) found most often;
  ties keep Spotify's order.
- A 400/401/403 on the token, or a 401 (after one renewal) / 403 on `/search`, means
  the app cannot use the API: `SpotifyUnavailable`, which the worker reports loudly
  (status condition, Event) and after which it stops asking Spotify - the Genius
  tracks are stored regardless. It is never recorded as a miss.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from analyzer_runtime.contract.scrape_models import normalize_name
from analyzer_runtime.scrape.http import Upstream

log = logging.getLogger(__name__)

# Renew the token this long before Spotify says it expires.
TOKEN_MARGIN_SECONDS = 60.0
SEARCH_LIMIT = 10
DURATION_TOLERANCE_MS = 3000
_AUDIO_FEATURES = (
    "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
    "instrumentalness", "liveness", "valence", "tempo", "duration_ms", "time_signature",
)  # fmt: skip


class SpotifyError(Exception):
    """Spotify could not be asked (token refused, retries exhausted)."""


class SpotifyUnavailable(SpotifyError):
    """The app is refused by Spotify (token or search: 400/401/403): no request will
    work for the rest of the run, so the Spotify part stops."""


@dataclass(frozen=True, slots=True)
class Enrichment:
    matched: bool
    data: dict[str, Any]  # what goes into tracks.spotify_data
    popularity: int | None = None
    explicit: bool | None = None


def normalize_title(title: str) -> str:
    """Title without featuring credits, bracketed notes and version suffixes, without
    punctuation, normalized like names: "Money Trees (feat. Jay Rock) - Remastered"
    -> "money trees"."""
    t = normalize_name(title)
    t = re.sub(r"[\(\[][^\)\]]*[\)\]]", " ", t)  # (feat. X), [Remix], (Live)
    t = re.sub(r"\s+-\s+.*$", " ", t)  # " - Remastered 2011", " - Radio Edit"
    t = re.sub(r"\b(feat|ft|featuring)\.?\s.*$", " ", t)
    t = re.sub(r"[^\w\s]", "", t)
    return " ".join(t.split())


def _quote(text: str) -> str:
    return text.replace('"', " ")


class SpotifyClient:
    def __init__(
        self,
        upstream: Upstream,
        *,
        client_id: str,
        client_secret: str,
        api_base: str,
        token_url: str,
        audio_features: bool = False,
    ) -> None:
        self.upstream = upstream
        self.api = api_base.rstrip("/")
        self.token_url = token_url
        self._credentials = (client_id, client_secret)
        self.audio_features = audio_features
        self._token: str | None = None
        self._expires = 0.0
        # Until one audio-features answer was usable, calls go one at a time, so a
        # 403 is seen before a second request is sent.
        self._features_lock = asyncio.Lock()
        self._features_ok = False
        self.audio_features_off: str | None = None  # why it was turned off

    async def _bearer(self, renew: bool = False) -> dict[str, str]:
        if renew or self._token is None or time.monotonic() >= self._expires:
            resp = await self.upstream.request(
                "POST",
                self.token_url,
                data={"grant_type": "client_credentials"},
                auth=self._credentials,
            )
            if resp.status_code >= 400:
                raise SpotifyUnavailable(
                    f"Spotify refused the client credentials (HTTP {resp.status_code} from the"
                    " token endpoint); check the Secrets named in spec.spotify and the app's"
                    " status on the Spotify developer dashboard"
                )
            body = resp.json()
            self._token = str(body["access_token"])
            ttl = float(body.get("expires_in") or 3600)
            self._expires = time.monotonic() + max(ttl - TOKEN_MARGIN_SECONDS, ttl / 2)
        return {"Authorization": f"Bearer {self._token}"}

    async def _send(self, path: str, **params: Any) -> tuple[int, dict[str, Any] | None]:
        """(status, JSON body or None)."""
        resp = await self.upstream.get(
            f"{self.api}{path}", params=params, headers=await self._bearer()
        )
        if resp.status_code == 401:  # expired early or revoked: renew once
            resp = await self.upstream.get(
                f"{self.api}{path}", params=params, headers=await self._bearer(renew=True)
            )
        if resp.status_code >= 400:
            return resp.status_code, None
        body: dict[str, Any] = resp.json()
        return resp.status_code, body

    async def _search(self, query: str) -> dict[str, Any]:
        code, body = await self._send("/search", q=query, type="track", limit=SEARCH_LIMIT)
        if code in (401, 403):
            raise SpotifyUnavailable(
                f"Spotify refused the app on /search (HTTP {code}); the app may be blocked"
                " or over its quota - check it on the Spotify developer dashboard"
            )
        if code == 404:
            return {}
        if code >= 400:
            raise SpotifyError(f"Spotify: HTTP {code} for /search")
        return body or {}

    async def _features(self, track_id: str) -> dict[str, Any] | None:
        if not self.audio_features:
            return None
        if self._features_ok:
            return await self._features_once(track_id)
        async with self._features_lock:
            if not self.audio_features:
                return None
            return await self._features_once(track_id)

    async def _features_once(self, track_id: str) -> dict[str, Any] | None:
        code, raw = await self._send(f"/audio-features/{track_id}")
        if code == 403:
            if self.audio_features:
                self.audio_features = False
                self.audio_features_off = (
                    "Spotify answered 403 on audio-features: since 27 Nov 2024 new and"
                    " development-mode apps may not use it; audio features are off for the"
                    " rest of the run"
                )
                log.warning("%s", self.audio_features_off)
            return None
        if code >= 400 and code != 404:
            raise SpotifyError(f"Spotify: HTTP {code} for /audio-features")
        self._features_ok = True
        return {k: raw[k] for k in _AUDIO_FEATURES if k in raw} if raw else None

    async def enrich(
        self, title: str, artist: str, *, album: str | None = None, year: int | None = None
    ) -> Enrichment:
        query = f'track:"{_quote(title)}" artist:"{_quote(artist)}"'
        body = await self._search(query)
        items = (body.get("tracks") or {}).get("items") or []
        want_title, want_artist = normalize_title(title), normalize_name(artist)
        matches = [
            it
            for it in items
            if normalize_title(str(it.get("name") or "")) == want_title
            and any(
                normalize_name(str(a.get("name") or "")) == want_artist
                for a in it.get("artists") or []
            )
        ]
        if not matches:
            return Enrichment(False, {"matched": False, "query": query, "results": len(items)})
        best = best_match(matches, title, album=album, year=year)
        features = await self._features(str(best.get("id")))
        best_album = best.get("album") or {}
        data = {
            "matched": True,
            "id": best.get("id"),
            "uri": best.get("uri"),
            "name": best.get("name"),
            "artists": [a.get("name") for a in best.get("artists") or []],
            "album": best_album.get("name"),
            "releaseDate": best_album.get("release_date"),
            "popularity": best.get("popularity"),
            "explicit": best.get("explicit"),
            "durationMs": best.get("duration_ms"),
            "audioFeatures": features,
        }
        pop = best.get("popularity")
        return Enrichment(
            True,
            data,
            popularity=int(pop) if pop is not None else None,
            explicit=best.get("explicit"),
        )


def _same_recording(a: dict[str, Any], b: dict[str, Any]) -> bool:
    da, db = a.get("duration_ms"), b.get("duration_ms")
    return da is not None and db is not None and abs(int(da) - int(db)) <= DURATION_TOLERANCE_MS


def best_match(
    matches: list[dict[str, Any]], title: str, *, album: str | None = None, year: int | None = None
) -> dict[str, Any]:
    """The best of several acceptable results (same title and artist), with or without
    `popularity` (see the module docstring); ties keep Spotify's order."""
    want_album = normalize_title(album) if album else None

    def key(pair: tuple[int, dict[str, Any]]) -> tuple[int, int, int, int, int, int]:
        i, it = pair
        pop = it.get("popularity")
        alb = it.get("album") or {}
        released = str(alb.get("release_date") or "")
        return (
            int(pop) if pop is not None else -1,
            int(
                want_album is not None and normalize_title(str(alb.get("name") or "")) == want_album
            ),
            int(year is not None and released[:4] == str(year)),
            int(normalize_name(str(it.get("name") or "")) == normalize_name(title)),
            sum(_same_recording(it, other) for other in matches),
            -i,
        )

    return max(enumerate(matches), key=key)[1]
