"""`python -m rap_devtools.fake_genius --port 0 --port-file PATH [--config JSON]`.

Serves the fake Genius + Spotify on 127.0.0.1 until SIGTERM/SIGINT; with --port 0 the
chosen port is written to --port-file once the catalog is built and the server listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from aiohttp import web

from rap_devtools.fake_genius.server import FakeConfig, FakeGenius


async def serve(host: str, port: int, port_file: Path | None, config: FakeConfig) -> None:
    runner = web.AppRunner(FakeGenius(config).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"fake Genius on http://{host}:{bound}/genius-api", flush=True)
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


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m rap_devtools.fake_genius", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path)
    ap.add_argument("--config", default="{}", help="FakeConfig fields as a JSON object")
    args = ap.parse_args()
    config = FakeConfig()
    config.update(json.loads(args.config))
    asyncio.run(serve(args.host, args.port, args.port_file, config))


if __name__ == "__main__":
    main()
