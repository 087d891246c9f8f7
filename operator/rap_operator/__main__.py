"""`python -m rap_operator`: run the operator (kopf) with liveness and readiness
endpoints and Prometheus metrics.

Scope: RAP_NAMESPACES=a,b watches those namespaces; unset, all namespaces.

RAP_LEADER_ELECTION=true: several replicas campaign for a Lease
(RAP_LEADER_ELECTION_LEASE, default rap-analyzer-operator, in POD_NAMESPACE); only
the holder runs kopf. A follower serves its probes and metrics and waits. A leader
that cannot renew within the renew deadline exits 1 at once; on SIGTERM it stops
kopf, releases the Lease (so a follower takes over at once) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

import kopf

from rap_operator import handlers, kube, leader, login, metrics  # noqa: F401 (registers handlers)
from rap_operator.config import OperatorConfig
from rap_operator.health import Health

log = logging.getLogger("rap_operator")


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


def _exit_at_once(code: int) -> None:
    """Leave without kopf's graceful stop (its handlers may take seconds to finish):
    a follower takes over a lease duration after our last renew, and by then this
    process must write nothing (what controller-runtime does on a lost election)."""
    logging.shutdown()
    os._exit(code)


async def _run(config: OperatorConfig) -> int:
    metrics.serve(config.metrics_port)
    metrics.set_leader(False)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signals() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)

    on_signals()
    elector: leader.Elector | None = None
    health = Health(
        live=lambda: leader.healthy(elector, loop.time()),
        # A follower is ready (and idle) once its first attempt settled its role.
        ready=lambda: elector is None or elector.last_attempt > 0,
    )
    await health.start(os.environ.get("RAP_LIVENESS", "http://0.0.0.0:8080/healthz"))
    holding: asyncio.Task[None] | None = None
    if config.leader_election:
        me = leader.identity(config.pod_name)

        def changed(prev: str, holder: str) -> None:
            metrics.leader_transition()
            metrics.set_leader(holder == me)
            log.info("leader election: leader %s -> %s", prev or "none", holder or "none")

        elector = leader.Elector(
            await kube.new_client(),
            config.lease_name,
            leader.lease_namespace(config.lease_namespace),
            me,
            on_change=changed,
        )
        log.info(
            "leader election: %s campaigns for Lease %s/%s",
            me, elector.namespace, elector.name,
        )  # fmt: skip
        if not await elector.campaign(stopping):
            await elector.api.close()
            await health.stop()
            return 0

        async def hold() -> None:
            assert elector is not None
            await elector.hold()
            _exit_at_once(1)

        # Created before kopf starts: kopf cancels, when it stops, only the tasks
        # started after it.
        holding = asyncio.create_task(hold())
    else:
        metrics.set_leader(True)
    # kopf replaces our signal handlers with its own as it starts; stopped by one of
    # them, it would then wait 5 s for the never-set stop flag's waiter among its
    # "hung tasks" before returning, delaying the hand-over. Ours again once kopf
    # runs, so that a signal stops it through the flag. (Created before kopf: it
    # leaves alone the tasks older than itself.)
    kopf_ready = asyncio.Event()

    async def take_signals_back() -> None:
        await kopf_ready.wait()
        on_signals()

    retake = asyncio.create_task(take_signals_back())
    namespaces = config.namespaces
    failed = False
    try:
        await kopf.operator(
            standalone=True,  # no KopfPeering: leader.py decides who runs kopf
            clusterwide=not namespaces,
            namespaces=namespaces,
            stop_flag=stopping,
            ready_flag=kopf_ready,
        )
    except Exception:
        log.exception("the operator stopped on an error")
        failed = True
    retake.cancel()
    if holding is not None:
        holding.cancel()
    if elector is not None:
        # kopf has stopped: nothing of ours writes any more, the next may lead.
        await elector.release()
        await elector.api.close()
    metrics.set_leader(False)
    await health.stop()
    return 1 if failed else 0


def main() -> None:
    _parse_args()
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietWatch())
    sys.exit(asyncio.run(_run(handlers.CONFIG)))


if __name__ == "__main__":
    main()
