"""A fake Genius + Spotify for tests and benchmarks (server.py), and `FakeGeniusServer`,
which runs it as a separate process (pods reach it over loopback) and drives its
admin API."""

from __future__ import annotations

from rap_devtools.fake_genius.catalog import Catalog, FakeSong, catalog
from rap_devtools.fake_genius.server import FakeConfig, FakeGenius
from rap_devtools.fake_server import FakeServerProcess

__all__ = ["Catalog", "FakeConfig", "FakeGenius", "FakeGeniusServer", "FakeSong", "catalog"]


class FakeGeniusServer(FakeServerProcess):
    """The fake in its own process, on a free loopback port."""

    module = "rap_devtools.fake_genius"
    name = "fake Genius"
    tmp_prefix = "fake-genius-"
    start_timeout = 60.0

    @property
    def genius_api(self) -> str:
        """What spec.genius.apiBaseURL takes."""
        return f"{self.base}/genius-api"

    @property
    def spotify_api(self) -> str:
        return f"{self.base}/spotify/v1"

    @property
    def spotify_token_url(self) -> str:
        return f"{self.base}/spotify/api/token"

    @property
    def catalog(self) -> Catalog:
        """The same catalog the server built (deterministic from its n_tracks and seed)."""
        d = FakeConfig()
        return catalog(self.config.get("n_tracks", d.n_tracks), self.config.get("seed", d.seed))

    def reset(self) -> None:
        """Clear the log and the fault counters; faults go back to none."""
        super().reset()
        self.configure(
            fail_every=0, throttle_every=0, fail_next=0, throttle_next=0, rate_limit=None,
            page_latency=0.0, api_latency=0.0, cloudflare="off", cloudflare_every=1,
            spotify_api="legacy", spotify_blocked="",
        )  # fmt: skip
