"""`python -m rap_devtools.fake_genius --port 0 --port-file PATH [--config JSON]`.

Serves the fake Genius + Spotify on 127.0.0.1 until SIGTERM/SIGINT; with --port 0 the
chosen port is written to --port-file once the catalog is built and the server listens.
"""

from __future__ import annotations

from rap_devtools import fake_server
from rap_devtools.fake_genius.server import FakeConfig, FakeGenius


def main() -> None:
    fake_server.main(
        "python -m rap_devtools.fake_genius",
        __doc__,
        FakeConfig,
        lambda config: FakeGenius(config).app(),
        "fake Genius on http://{host}:{port}/genius-api",
    )


if __name__ == "__main__":
    main()
