"""The Genius client: artist by exact name, the artist's songs, each song's lyrics.

Requests (all through one `Upstream`, so one budget covers API calls and pages):
- `GET {api}/search?q=NAME` - song hits; their primary artists are the candidates.
  The artist is the candidate whose name equals NAME (case, spacing, apostrophe and
  Unicode forms ignored), never simply the first hit. Several different artists with
  that exact name are recorded as ambiguous (the one with most hits is taken).
- `GET {api}/artists/{id}/songs?sort=popularity&per_page=50&page=N` - the listing,
  paged by `next_page`.
- `GET {api}/songs/{id}` - album and release date.
- the song's page (`url` of the song, on genius.com): the lyrics (lyrics.py). The
  API token is sent to the API only, never to the page's host.

Genius sits behind Cloudflare: song pages are requested with a browser's headers
(cloudflare.BROWSER_HEADERS), and every answer - API and page - is checked for a
Cloudflare challenge (cloudflare.py). A challenged request is retried with backoff;
still challenged, it raises `http.Blocked` (the song is recorded failed, reason
`blocked`), never read as a page without lyrics or as a refused token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from analyzer_runtime.contract.scrape_models import normalize_name
from analyzer_runtime.scrape.cloudflare import BROWSER_HEADERS, challenged
from analyzer_runtime.scrape.http import Upstream
from analyzer_runtime.scrape.lyrics import extract_lyrics, guess_language, is_non_song, word_count

PER_PAGE = 50
SEARCH_PAGES = 2


class ArtistNotFound(Exception):
    """No Genius artist has exactly this name; the message lists what the search found."""


class SongUnavailable(Exception):
    """A song's metadata or page could not be read (after retries, or a 4xx)."""


class AuthError(Exception):
    """The API refused the token: every request would fail, so the shard stops."""


@dataclass(frozen=True, slots=True)
class ArtistMatch:
    query: str
    artist_id: int
    name: str
    ambiguous: bool
    candidates: list[dict[str, Any]]  # every artist the search returned: id, name, hits


@dataclass(frozen=True, slots=True)
class SongEntry:
    """One entry of an artist's song listing."""

    genius_id: int
    title: str
    url: str
    artist_id: int | None
    artist_name: str
    instrumental: bool
    song_art_url: str | None
    release_date: date | None

    @property
    def is_song(self) -> bool:
        return not is_non_song(self.title)


@dataclass(frozen=True, slots=True)
class ScrapedSong:
    """A song ready to be a `tracks` row (the columns the original platform had)."""

    genius_id: int
    title: str
    artist: str
    album: str | None
    release_date: date | None
    url: str
    lyrics: str
    word_count: int
    language: str | None
    song_art_url: str | None


def _date(text: str | None) -> date | None:
    """A full ISO date only: Genius often knows just the year, and inventing the day
    would put a wrong date in the corpus."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _components_date(c: dict[str, Any] | None) -> date | None:
    if not c or not all(c.get(k) for k in ("year", "month", "day")):
        return None
    try:
        return date(int(c["year"]), int(c["month"]), int(c["day"]))
    except (TypeError, ValueError):
        return None


def _entry(song: dict[str, Any]) -> SongEntry:
    artist = song.get("primary_artist") or {}
    return SongEntry(
        genius_id=int(song["id"]),
        title=str(song.get("title") or ""),
        url=str(song.get("url") or ""),
        artist_id=artist.get("id"),
        artist_name=str(artist.get("name") or ""),
        instrumental=bool(song.get("instrumental")),
        song_art_url=song.get("song_art_image_url"),
        release_date=_components_date(song.get("release_date_components")),
    )


class GeniusClient:
    def __init__(self, upstream: Upstream, token: str, api_base: str) -> None:
        self.upstream = upstream
        self.api = api_base.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"}

    async def _api(self, path: str, **params: Any) -> dict[str, Any]:
        resp = await self.upstream.get(
            f"{self.api}{path}", params=params, headers=self._auth, challenged=challenged
        )
        if resp.status_code in (401, 403):
            # Not retried: a bad token fails every request the same way.
            raise AuthError(
                f"Genius API refused the access token (HTTP {resp.status_code} for {path});"
                " check the Secret named in spec.genius.tokenSecretRef"
            )
        if resp.status_code >= 400:
            raise SongUnavailable(f"genius: HTTP {resp.status_code} for {path}")
        body: dict[str, Any] = resp.json().get("response") or {}
        return body

    async def find_artist(self, name: str) -> ArtistMatch:
        """The artist named exactly `name` (see the module docstring)."""
        wanted = normalize_name(name)
        seen: dict[int, dict[str, Any]] = {}
        for page in range(1, SEARCH_PAGES + 1):
            body = await self._api("/search", q=name, per_page=20, page=page)
            hits = [h.get("result") or {} for h in body.get("hits") or []]
            for song in hits:
                artist = song.get("primary_artist") or {}
                if artist.get("id") is None:
                    continue
                aid = int(artist["id"])
                cand = seen.setdefault(aid, {"id": aid, "name": artist.get("name"), "hits": 0})
                cand["hits"] += 1
            exact = [c for c in seen.values() if normalize_name(c["name"] or "") == wanted]
            if exact or len(hits) < 20:
                break
        candidates = list(seen.values())
        if not exact:
            found = ", ".join(repr(c["name"]) for c in candidates[:5]) or "nothing"
            raise ArtistNotFound(
                f"no Genius artist named exactly {name!r} (the search found {found})"
            )
        best = max(exact, key=lambda c: c["hits"])  # max keeps the first of equals
        return ArtistMatch(name, best["id"], best["name"], len(exact) > 1, candidates)

    async def artist_songs(self, artist_id: int) -> AsyncIterator[SongEntry]:
        """The artist's listing, most popular first, page by page as it is consumed."""
        page: int | None = 1
        while page is not None:
            body = await self._api(
                f"/artists/{artist_id}/songs", sort="popularity", per_page=PER_PAGE, page=page
            )
            for song in body.get("songs") or []:
                yield _entry(song)
            nxt = body.get("next_page")
            page = int(nxt) if nxt else None

    async def song(self, entry: SongEntry, artist_name: str) -> ScrapedSong | None:
        """The song as a track row, or None when its page has no lyrics."""
        details = (await self._api(f"/songs/{entry.genius_id}")).get("song") or {}
        url = str(details.get("url") or entry.url)
        try:
            resp = await self.upstream.get(url, headers=BROWSER_HEADERS, challenged=challenged)
        except httpx.InvalidURL as exc:
            raise SongUnavailable(f"bad song URL {url!r}: {exc}") from None
        if resp.status_code >= 400:
            raise SongUnavailable(f"song page {url}: HTTP {resp.status_code}")
        lyrics = extract_lyrics(resp.text)
        if not lyrics:
            return None
        album = details.get("album") or {}
        return ScrapedSong(
            genius_id=entry.genius_id,
            title=str(details.get("title") or entry.title),
            artist=artist_name,
            album=album.get("name") if isinstance(album, dict) else None,
            release_date=_date(details.get("release_date")) or entry.release_date,
            url=url,
            lyrics=lyrics,
            word_count=word_count(lyrics),
            language=details.get("language") or guess_language(lyrics),
            song_art_url=details.get("song_art_image_url") or entry.song_art_url,
        )
