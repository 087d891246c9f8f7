"""What the fakes (fake_genius, fake_llm) share: `FakeServerProcess`, a fake HTTP
server run as a child process on a free loopback port and driven over its JSON admin
API, and the `python -m` side of it (`serve`, `main`).

It fakes no service itself: each fake's own module docstring names the public
documents of the service it plays (fake_llm/server.py: OpenAI's API reference, the
Qwen3 model card, vLLM, Novita; fake_genius: docs.genius.com (catalog.py), Cloudflare's
challenge pages, Spotify's Web API and its Nov 2024 changes)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, TypeVar

from aiohttp import web

from rap_devtools.procs import stop_process
from rap_devtools.waiting import wait_for


class _Config(Protocol):
    def update(self, changes: dict[str, Any]) -> None: ...


C = TypeVar("C", bound=_Config)


class Settings:
    """Mixin for a fake's FakeConfig dataclass: `update` from a JSON object."""

    def update(self, changes: dict[str, Any]) -> None:
        # The mixin only goes on dataclasses, which mypy cannot know of `self` here.
        names = {f.name for f in fields(self)}  # type: ignore[arg-type]
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        for k, v in changes.items():
            setattr(self, k, v)


class AdminApi:
    """The admin endpoints every fake has. Subclasses set `config` (a dataclass) and
    `log`, and define `set_config` and `reset`."""

    config: Any
    log: list[dict[str, Any]]

    def add_admin_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/admin/config", self.get_config)
        router.add_post("/admin/config", self.set_config)
        router.add_get("/admin/log", self.get_log)
        router.add_post("/admin/reset", self.reset)

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.config))

    async def set_config(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def get_log(self, request: web.Request) -> web.Response:
        return web.json_response(self.log)

    async def reset(self, request: web.Request) -> web.Response:
        raise NotImplementedError


class FakeServerProcess:
    """A fake server (`python -m <module>`) in its own process, on a free loopback port."""

    module: ClassVar[str]  # what `python -m` runs
    name: ClassVar[str]  # for error messages, e.g. "fake LLM"
    tmp_prefix: ClassVar[str]  # of its temp dir (port file, output)
    start_timeout: ClassVar[float] = 30.0

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._dir = Path(tempfile.mkdtemp(prefix=self.tmp_prefix))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float | None = None) -> Self:
        timeout = self.start_timeout if timeout is None else timeout
        port_file = self._dir / "port"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", "0",
             "--port-file", str(port_file), "--config", json.dumps(self.config)],
            stdout=(self._dir / "out.log").open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        proc = self.proc
        wait_for(port_file.exists, timeout=timeout, interval=0.05,
                 what=f"{self.name} to write its port", describe=self.output,
                 give_up=lambda: (proc.poll() is not None
                 and f"exited {proc.returncode}: {self.output()}") or None)  # fmt: skip
        self.port = int(port_file.read_text())
        return self

    def output(self) -> str:
        path = self._dir / "out.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> Self:
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
        self._call("POST", "/admin/reset", {})


async def serve(
    app: web.Application, host: str, port: int, port_file: Path | None, banner: str
) -> None:
    """Serve `app` until SIGTERM/SIGINT. `banner` is printed once listening, with
    `{host}` and `{port}` filled in; with port 0 the chosen port is written to
    `port_file` (atomically) so a parent can find it."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(banner.format(host=host, port=bound), flush=True)
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)  # atomic: a reader never sees a half-written port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(
    prog: str,
    description: str | None,
    config: Callable[[], C],
    app: Callable[[C], web.Application],
    banner: str,
) -> None:
    """`python -m <prog> [--host H] [--port P] [--port-file PATH] [--config JSON]`:
    `config()` is updated with the --config object, then `app(config)` is served."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path)
    ap.add_argument("--config", default="{}", help="FakeConfig fields as a JSON object")
    args = ap.parse_args()
    cfg = config()
    cfg.update(json.loads(args.config))

    async def run() -> None:
        await serve(app(cfg), args.host, args.port, args.port_file, banner)

    asyncio.run(run())
