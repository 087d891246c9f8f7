"""`python -m rap_devtools.fake_llm --port 0 --port-file PATH [--config JSON]`.

Serves the fake provider on 127.0.0.1 until SIGTERM/SIGINT; with --port 0 the
chosen port is printed and written to --port-file (so a parent can find it).
"""

from __future__ import annotations

from rap_devtools import fake_server
from rap_devtools.fake_llm.server import FakeConfig, FakeProvider


def main() -> None:
    fake_server.main(
        "python -m rap_devtools.fake_llm",
        __doc__,
        FakeConfig,
        lambda config: FakeProvider(config).app(),
        "fake LLM provider on http://{host}:{port}/v1",
    )


if __name__ == "__main__":
    main()
