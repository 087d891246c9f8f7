"""Spotify enrichment: popularity, explicit flag and audio features into spotify_data.

Client-credentials flow (`POST tokenURL grant_type=client_credentials` with the
client id and secret as HTTP Basic auth; the token is cached until shortly before it
expires and renewed once on a 401). A track is searched by artist and title
(`GET {api}/search?q=track:"T" artist:"A"&type=track`) and a result is accepted only
if its title - without "(feat. ...)", "- Remastered" and the like - equals the
Genius title and one of its artists is the Genius artist (both compared normalized).
Of several acceptable results the most popular wins. No acceptable result is a
*miss*: recorded (spotify_data = {"matched": false, ...}), never an error.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from analyzer_runtime.scrape.genius import normalize_name
from analyzer_runtime.scrape.http import Upstream

# Renew the token this long before Spotify says it expires.
TOKEN_MARGIN_SECONDS = 60.0
SEARCH_LIMIT = 10
_AUDIO_FEATURES = (
    "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
    "instrumentalness", "liveness", "valence", "tempo", "duration_ms", "time_signature",
)  # fmt: skip


class SpotifyError(Exception):
    """Spotify could not be asked (token refused, retries exhausted)."""


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
        audio_features: bool = True,
    ) -> None:
        self.upstream = upstream
        self.api = api_base.rstrip("/")
        self.token_url = token_url
        self._credentials = (client_id, client_secret)
        self.audio_features = audio_features
        self._token: str | None = None
        self._expires = 0.0

    async def _bearer(self, renew: bool = False) -> dict[str, str]:
        if renew or self._token is None or time.monotonic() >= self._expires:
            resp = await self.upstream.request(
                "POST",
                self.token_url,
                data={"grant_type": "client_credentials"},
                auth=self._credentials,
            )
            if resp.status_code >= 400:
                raise SpotifyError(
                    f"Spotify refused the client credentials (HTTP {resp.status_code}); check"
                    " the Secrets named in spec.spotify"
                )
            body = resp.json()
            self._token = str(body["access_token"])
            ttl = float(body.get("expires_in") or 3600)
            self._expires = time.monotonic() + max(ttl - TOKEN_MARGIN_SECONDS, ttl / 2)
        return {"Authorization": f"Bearer {self._token}"}

    async def _get(self, path: str, **params: Any) -> dict[str, Any] | None:
        """The JSON answer; None for a 404 (no such resource)."""
        resp = await self.upstream.get(
            f"{self.api}{path}", params=params, headers=await self._bearer()
        )
        if resp.status_code == 401:  # expired early or revoked: renew once
            resp = await self.upstream.get(
                f"{self.api}{path}", params=params, headers=await self._bearer(renew=True)
            )
        if resp.status_code in (403, 404):
            return None
        if resp.status_code >= 400:
            raise SpotifyError(f"Spotify: HTTP {resp.status_code} for {path}")
        body: dict[str, Any] = resp.json()
        return body

    async def enrich(self, title: str, artist: str) -> Enrichment:
        query = f'track:"{_quote(title)}" artist:"{_quote(artist)}"'
        body = await self._get("/search", q=query, type="track", limit=SEARCH_LIMIT) or {}
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
        best = max(matches, key=lambda it: int(it.get("popularity") or 0))
        features = None
        if self.audio_features:
            raw = await self._get(f"/audio-features/{best['id']}")
            features = {k: raw[k] for k in _AUDIO_FEATURES if k in raw} if raw else None
        album = best.get("album") or {}
        data = {
            "matched": True,
            "id": best.get("id"),
            "uri": best.get("uri"),
            "name": best.get("name"),
            "artists": [a.get("name") for a in best.get("artists") or []],
            "album": album.get("name"),
            "releaseDate": album.get("release_date"),
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
