"""A fake Genius + Spotify: real HTTP, the real APIs' shapes, scripted behaviour.

    GET  /genius-api/search?q=&per_page=&page=      song hits (catalog.search)
    GET  /genius-api/artists/{id}/songs?per_page=&page=&sort=   the listing, paged
    GET  /genius-api/songs/{id}                     song details (album, release date)
    GET  /{song path}-lyrics                        the song page (pages.render)
    POST /spotify/api/token                         client credentials -> bearer token
    GET  /spotify/v1/search?q=&type=track&limit=    track search
    GET  /spotify/v1/audio-features/{id}            audio features (404 for some)
    GET|POST /admin/config, GET /admin/log, POST /admin/reset

The Genius API wants `Authorization: Bearer <genius_token>`; pages want nothing.
Faults (FakeConfig): every Nth request of an upstream answered 500 (`fail_every`) or
429 + Retry-After (`throttle_every`), bursts of the next N (`fail_next`,
`throttle_next`), a real sliding-window limit answered 429 + Retry-After
(`rate_limit` per `rate_window`), and latency on pages and API calls. Every request
is logged with its wall-clock time, upstream, path and status.

The services as they really behave (issue 11):
- `cloudflare` (cloudflare.py): song pages answered with Cloudflare's Challenge
  Page, after Cloudflare's "Detect a Challenge Page response" documentation
  (https://developers.cloudflare.com/cloudflare-challenges/challenge-types/challenge-pages/detect-response).
- `spotify_api = "2024"`: Spotify's Web API after its 27 Nov 2024 announcement
  "Introducing some changes to our Web API"
  (https://developer.spotify.com/blog/2024-11-27-changes-to-the-web-api): 403 on
  audio-features for the (new / development-mode) app, and tracks without
  `popularity`, as development-mode apps get them since 2026.
- `spotify_blocked = "token" | "search"`: the app refused - 403 on the token
  endpoint or on /search (a blocked or quota-exceeded app).
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from analyzer_runtime.contract.scrape_models import normalize_name
from analyzer_runtime.scrape.spotify import normalize_title
from rap_devtools.fake_genius import cloudflare, pages
from rap_devtools.fake_genius.catalog import Catalog, FakeSong, _h, catalog
from rap_devtools.fake_server import AdminApi, Settings

MAX_PER_PAGE = 50


@dataclass
class FakeConfig(Settings):
    n_tracks: int = 4000
    seed: int = 7
    genius_token: str = "genius-test-token"
    spotify_client_id: str = "spotify-id"
    spotify_client_secret: str = "spotify-secret"
    page_latency: float = 0.0  # seconds per song page
    api_latency: float = 0.0  # seconds per API call
    fail_every: int = 0  # every Nth request of an upstream gets fail_status (0 = never)
    fail_status: int = 500
    throttle_every: int = 0  # every Nth request of an upstream gets 429
    retry_after: float = 1.0  # seconds, in the 429's Retry-After
    fail_next: int = 0  # a burst: the next N requests fail (any upstream)
    throttle_next: int = 0  # a burst of 429s
    rate_limit: int | None = None  # requests per rate_window and upstream, then 429
    rate_window: float = 60.0
    cloudflare: str = "off"  # off | challenge | interstitial | bots (cloudflare.py)
    cloudflare_every: int = 1  # songs with _h("cf", id) % N == 0 are challenged
    spotify_api: str = "legacy"  # legacy | 2024 (403 on audio-features, no popularity)
    spotify_blocked: str = ""  # "" | token | search: 403 there (the app is refused)


def _song_json(s: FakeSong, base: str) -> dict[str, Any]:
    d = s.release_date
    return {
        "id": s.id,
        "title": s.title,
        "full_title": f"{s.title} by {s.artist_name}",
        "url": base + s.path,
        "path": s.path,
        "lyrics_state": "complete",
        "instrumental": s.kind == "instrumental",
        "primary_artist": {"id": s.artist_id, "name": s.artist_name},
        "release_date_components": (
            {"year": d.year, "month": d.month, "day": d.day} if d else None
        ),
        "song_art_image_url": f"{base}/images/{s.id}.jpg",
        "stats": {"pageviews": s.popularity * 1000},
    }


class FakeGenius(AdminApi):
    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.catalog: Catalog = catalog(self.config.n_tracks, self.config.seed)
        self.paths = {s.path: s for s in self.catalog.songs.values()}
        self.log: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.windows: dict[str, deque[float]] = {}
        self.tokens: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        r = app.router
        r.add_get("/genius-api/search", self.search)
        r.add_get("/genius-api/artists/{id}/songs", self.artist_songs)
        r.add_get("/genius-api/songs/{id}", self.song)
        r.add_post("/spotify/api/token", self.spotify_token)
        r.add_get("/spotify/v1/search", self.spotify_search)
        r.add_get("/spotify/v1/audio-features/{id}", self.audio_features)
        self.add_admin_routes(r)
        r.add_get("/{path:.+-lyrics}", self.page)
        return app

    # ---- faults and the log --------------------------------------------------------

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if path.startswith("/admin/"):
            return await handler(request)
        upstream = "spotify" if path.startswith("/spotify/") else "genius"
        entry: dict[str, Any] = {"t": time.time(), "upstream": upstream, "path": path}
        self.log.append(entry)
        n = self.counts[upstream] = self.counts.get(upstream, 0) + 1
        c = self.config
        response: web.StreamResponse | None = None
        if c.fail_next > 0 or (c.fail_every and n % c.fail_every == 0):
            c.fail_next = max(0, c.fail_next - 1)
            response = web.json_response({"error": "fake failure"}, status=c.fail_status)
        elif c.throttle_next > 0 or (c.throttle_every and n % c.throttle_every == 0):
            c.throttle_next = max(0, c.throttle_next - 1)
            response = self._throttled(c.retry_after)
        elif (wait := self._over_limit(upstream, entry["t"])) is not None:
            response = self._throttled(wait)
        if response is None:
            delay = c.page_latency if path.endswith("-lyrics") else c.api_latency
            if delay:
                await asyncio.sleep(delay)
            response = await handler(request)
        entry["status"] = response.status
        return response

    @staticmethod
    def _throttled(wait: float) -> web.Response:
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        return web.json_response({"error": "rate limited"}, status=429, headers=headers)

    def _over_limit(self, upstream: str, now: float) -> float | None:
        c = self.config
        if not c.rate_limit:
            return None
        window = self.windows.setdefault(upstream, deque())
        while window and window[0] <= now - c.rate_window:
            window.popleft()
        if len(window) < c.rate_limit:
            window.append(now)
            return None
        return window[0] + c.rate_window - now

    def _base(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def _genius_auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.config.genius_token}":
            return web.json_response(
                {"meta": {"status": 401, "message": "This call requires an access_token."}},
                status=401,
            )
        return None

    @staticmethod
    def _ok(response: dict[str, Any]) -> web.Response:
        return web.json_response({"meta": {"status": 200}, "response": response})

    # ---- Genius ----------------------------------------------------------------------

    async def search(self, request: web.Request) -> web.Response:
        if (denied := self._genius_auth(request)) is not None:
            return denied
        per_page = min(int(request.query.get("per_page", 10)), 20)
        page = int(request.query.get("page", 1))
        hits = self.catalog.search(request.query.get("q", ""))
        chunk = hits[(page - 1) * per_page : page * per_page]
        base = self._base(request)
        return self._ok(
            {"hits": [{"index": "song", "type": "song", "result": _song_json(s, base)}
                      for s in chunk]}
        )  # fmt: skip

    async def artist_songs(self, request: web.Request) -> web.Response:
        if (denied := self._genius_auth(request)) is not None:
            return denied
        artist = self.catalog.by_id.get(int(request.match_info["id"]))
        if artist is None:
            return web.json_response({"meta": {"status": 404}}, status=404)
        per_page = min(int(request.query.get("per_page", 20)), MAX_PER_PAGE)
        page = int(request.query.get("page", 1))
        songs = artist.songs[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(artist.songs)
        base = self._base(request)
        return self._ok(
            {"songs": [_song_json(s, base) for s in songs], "next_page": page + 1 if more else None}
        )

    async def song(self, request: web.Request) -> web.Response:
        if (denied := self._genius_auth(request)) is not None:
            return denied
        s = self.catalog.songs.get(int(request.match_info["id"]))
        if s is None:
            return web.json_response({"meta": {"status": 404}}, status=404)
        body = _song_json(s, self._base(request))
        body["album"] = {"id": _h("album", s.album) % 10_000, "name": s.album} if s.album else None
        body["release_date"] = s.release_date.isoformat() if s.release_date else None
        return self._ok({"song": body})

    def cloudflare_blocks(self, song_id: int) -> bool:
        """Whether this song's page is challenged in the current Cloudflare mode."""
        c = self.config
        return c.cloudflare != "off" and _h("cf", song_id) % max(1, c.cloudflare_every) == 0

    async def page(self, request: web.Request) -> web.Response:
        s = self.paths.get(request.path)
        if s is None:
            return web.Response(status=404, text="<html>Page not found</html>")
        if self.cloudflare_blocks(s.id):
            challenged = cloudflare.answer(self.config.cloudflare, request)
            if challenged is not None:
                return challenged
        return web.Response(text=pages.render(s), content_type="text/html")

    # ---- Spotify ---------------------------------------------------------------------

    async def spotify_token(self, request: web.Request) -> web.Response:
        c = self.config
        if c.spotify_blocked == "token":
            return self._spotify_refused()
        want = base64.b64encode(f"{c.spotify_client_id}:{c.spotify_client_secret}".encode())
        form = await request.post()
        if request.headers.get("Authorization") != f"Basic {want.decode()}" or (
            form.get("grant_type") != "client_credentials"
        ):
            return web.json_response({"error": "invalid_client"}, status=400)
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        )

    @staticmethod
    def _spotify_refused() -> web.Response:
        return web.json_response({"error": {"status": 403, "message": "Forbidden"}}, status=403)

    def _spotify_auth(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.tokens:
            return web.json_response({"error": {"status": 401}}, status=401)
        return None

    def _track(self, s: FakeSong, *, artist: str | None = None) -> dict[str, Any]:
        """A Spotify track for a song; some titles carry a version suffix, as on Spotify."""
        title = s.title + (" - Remastered" if _h("rm", s.id) % 5 == 0 else "")
        track = {
            "id": f"sp{s.id}" if artist is None else f"other{s.id}",
            "uri": f"spotify:track:sp{s.id}",
            "name": title,
            "artists": [{"name": artist or s.artist_name}],
            "album": {"name": s.album, "release_date": str(s.release_date)},
            "popularity": s.popularity,
            "explicit": s.explicit,
            "duration_ms": 120_000 + _h("dur", s.id) % 180_000,
        }
        if self.config.spotify_api == "2024":
            del track["popularity"]  # development-mode apps get no popularity (2026)
        return track

    async def spotify_search(self, request: web.Request) -> web.Response:
        if (denied := self._spotify_auth(request)) is not None:
            return denied
        if self.config.spotify_blocked == "search":
            return self._spotify_refused()
        q = request.query.get("q", "")
        title = q.partition('track:"')[2].partition('"')[0]
        artist = q.partition('artist:"')[2].partition('"')[0]
        want_t, want_a = normalize_title(title), normalize_name(artist)
        items = []
        for a in self.catalog.artists:
            if normalize_name(a.name) != want_a:
                continue
            items += [self._track(s) for s in a.songs
                      if s.on_spotify and normalize_title(s.title) == want_t]  # fmt: skip
        # Spotify's search is fuzzy: a same-titled song by someone else comes along,
        # and the match check must not take it.
        items.append(self._track(FakeSong(0, title, 0, "x", "Other", None, "x"), artist="Covers"))
        limit = int(request.query.get("limit", 20))
        return web.json_response({"tracks": {"items": items[:limit], "total": len(items)}})

    async def audio_features(self, request: web.Request) -> web.Response:
        if (denied := self._spotify_auth(request)) is not None:
            return denied
        if self.config.spotify_api == "2024":  # not for new / development-mode apps
            return self._spotify_refused()
        tid = request.match_info["id"]
        if not tid.startswith("sp") or _h("af", tid) % 10 == 0:
            return web.json_response({"error": {"status": 404}}, status=404)
        h = _h("features", tid)
        return web.json_response(
            {"id": tid, "danceability": (h % 100) / 100, "energy": (h // 100 % 100) / 100,
             "valence": (h // 10_000 % 100) / 100, "tempo": 70 + h % 90, "key": h % 12,
             "mode": h % 2, "speechiness": 0.3, "duration_ms": 200_000}
        )  # fmt: skip

    # ---- admin -----------------------------------------------------------------------

    async def set_config(self, request: web.Request) -> web.Response:
        changes = await request.json()
        if {"n_tracks", "seed"} & set(changes):
            return web.json_response({"error": "the catalog is fixed at start"}, status=400)
        try:
            if changes.get("cloudflare", "off") not in cloudflare.MODES:
                raise ValueError(f"cloudflare must be one of {cloudflare.MODES}")
            if changes.get("spotify_api", "legacy") not in ("legacy", "2024"):
                raise ValueError("spotify_api must be 'legacy' or '2024'")
            if changes.get("spotify_blocked", "") not in ("", "token", "search"):
                raise ValueError("spotify_blocked must be '', 'token' or 'search'")
            self.config.update(changes)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.config))

    async def reset(self, request: web.Request) -> web.Response:
        self.log.clear()
        self.counts.clear()
        self.windows.clear()
        return web.json_response({"ok": True})
