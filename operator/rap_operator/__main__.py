"""`python -m rap_operator`: run the operator (kopf) with a liveness endpoint.

Scope: RAP_NAMESPACES=a,b watches those namespaces; unset, all namespaces.
"""

from __future__ import annotations

import argparse
import logging
import os

import kopf

from rap_operator import handlers, login  # noqa: F401 (importing registers the handlers)


class _QuietWatch(logging.Filter):
    """kopf logs every watch event a handler took; one line per Job change is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (
            record.levelno <= logging.INFO and ("'run_event'" in msg or "'job_event'" in msg)
        )


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """No options: configured by environment (the chart sets it). `--help` says so
    (and exits 0 without contacting a cluster)."""
    parser = argparse.ArgumentParser(
        prog="python -m rap_operator",
        description=(__doc__ or "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.parse_args(argv)


def main() -> None:
    _parse_args()
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietWatch())
    namespaces = handlers.CONFIG.namespaces
    kopf.run(
        standalone=True,  # one replica; no KopfPeering CRD needed
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=os.environ.get("RAP_LIVENESS", "http://0.0.0.0:8080/healthz"),
    )


if __name__ == "__main__":
    main()
