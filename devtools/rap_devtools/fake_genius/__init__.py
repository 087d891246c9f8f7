"""A fake Genius + Spotify for tests and benchmarks (server.py), and `FakeGeniusServer`,
which runs it as a separate process (pods reach it over loopback) and drives its
admin API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from rap_devtools.fake_genius.catalog import Catalog, FakeSong, catalog
from rap_devtools.fake_genius.server import FakeConfig, FakeGenius

__all__ = ["Catalog", "FakeConfig", "FakeGenius", "FakeGeniusServer", "FakeSong", "catalog"]


class FakeGeniusServer:
    """The fake in its own process, on a free loopback port."""

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._dir = Path(tempfile.mkdtemp(prefix="fake-genius-"))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    def start(self, timeout: float = 60.0) -> FakeGeniusServer:
        port_file = self._dir / "port"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rap_devtools.fake_genius", "--port", "0",
             "--port-file", str(port_file), "--config", json.dumps(self.config)],
            stdout=(self._dir / "out.log").open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"fake Genius exited {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake Genius did not start in {timeout}s: {self.output()}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        return self

    def output(self) -> str:
        path = self._dir / "out.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def __enter__(self) -> FakeGeniusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def configure(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/admin/config", changes)
        return result

    def log(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/admin/log")
        return result

    def reset(self) -> None:
        """Clear the log and the fault counters; faults go back to none."""
        self._call("POST", "/admin/reset", {})
        self.configure(
            fail_every=0, throttle_every=0, fail_next=0, throttle_next=0, rate_limit=None,
            page_latency=0.0, api_latency=0.0,
        )  # fmt: skip
