"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection
package does it (the controller-runtime defaults: a 15 s lease, a 10 s renew
deadline, a 2 s retry period).

Why our own: kopf's peering freezes peers of equal priority instead of electing one,
so with two replicas nothing would reconcile.

`decide` is the pure part (table-tested in tests/operator/test_leader_pure.py): from
the Lease record read, the identity of this process and the local clock, what to
write, if anything. `Elector` does the I/O: it reads the Lease and writes it with the
resourceVersion it read, so that of two candidates writing at once one gets 409
Conflict and stays a follower.

An expiry is judged by when *this* process first saw the record as it is, never by
the renewTime another machine wrote: two clocks that disagree by seconds would
otherwise let a follower take a live leader's Lease (client-go's observedTime).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger("rap_operator.leader")

SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

T = TypeVar("T")

# What an apiserver outage or partition raises.
_OUTAGE = (ApiException, aiohttp.ClientError, OSError, TimeoutError)


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 15.0  # a follower takes over a Lease not renewed for this long
    renew_deadline: float = 10.0  # a leader that has not renewed for this long steps down
    retry_period: float = 2.0  # between attempts, of followers and of the leader alike


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec; an empty holder means released (anyone may take it)."""

    holder: str
    renew_time: datetime | None
    acquire_time: datetime | None
    duration: float
    transitions: int


@dataclass(frozen=True)
class Seen:
    """A record and when this process first saw it (its local clock)."""

    record: LeaseRecord | None
    since: datetime


def observe(prev: Seen | None, record: LeaseRecord | None, now: datetime) -> Seen:
    """The observation after reading `record`: unchanged records keep the time they
    were first seen, so a leader that stops renewing expires in a lease duration."""
    if prev is not None and prev.record == record:
        return prev
    return Seen(record, now)


class Action(enum.Enum):
    CREATE = "create"  # no Lease yet: create it, holding it
    ACQUIRE = "acquire"  # released (empty holder): take it
    TAKE_OVER = "take over"  # its holder stopped renewing: take it
    RENEW = "renew"  # mine: renew it
    FOLLOW = "follow"  # another's and live: wait


@dataclass(frozen=True)
class Decision:
    action: Action
    write: LeaseRecord | None  # the record to write; None for FOLLOW
    # FOLLOW: seconds until the holder's lease expires as this process sees it.
    expires_in: float = 0.0


def decide(seen: Seen, me: str, now: datetime, timing: Timing = Timing()) -> Decision:
    """What a candidate (or the leader, renewing) does with the Lease as last read."""
    rec = seen.record
    if rec is None:
        new = LeaseRecord(me, now, now, timing.lease_duration, 0)
        return Decision(Action.CREATE, new)
    if rec.holder == me:
        return Decision(Action.RENEW, replace(rec, renew_time=now, duration=timing.lease_duration))
    taken = LeaseRecord(me, now, now, timing.lease_duration, rec.transitions + 1)
    if not rec.holder:
        return Decision(Action.ACQUIRE, taken)
    # The holder's own duration counts (it may be configured otherwise than ours).
    left = (seen.since - now).total_seconds() + (rec.duration or timing.lease_duration)
    if left > 0:
        return Decision(Action.FOLLOW, None, expires_in=left)
    return Decision(Action.TAKE_OVER, taken)


def released(rec: LeaseRecord, now: datetime) -> LeaseRecord:
    """What a leader stepping down writes (client-go's ReleaseOnCancel): no holder, and
    a 1 s duration for candidates that judge by it, so the next takes it at once."""
    return replace(rec, holder="", renew_time=now, acquire_time=now, duration=1.0)


def renew_overdue(last_renew: float, now: float, timing: Timing = Timing()) -> bool:
    """The leader has not renewed within the renew deadline (monotonic seconds): it must
    stop reconciling, since a follower may take over `lease_duration` after the last
    renew it saw and the two would both write."""
    return now - last_renew >= timing.renew_deadline


def identity(pod_name: str | None) -> str:
    """The pod's name plus a random suffix (a restarted container of the same pod is a
    new candidate, not the old leader), else hostname and pid outside a pod."""
    if pod_name:
        return f"{pod_name}_{secrets.token_hex(3)}"
    return f"{socket.gethostname()}_{os.getpid()}"


def lease_namespace(configured: str | None) -> str:
    """RAP_LEADER_ELECTION_NAMESPACE or POD_NAMESPACE (config), else the namespace of
    the pod's ServiceAccount, else `default` (a process outside a cluster)."""
    if configured:
        return configured
    try:
        with open(SA_NAMESPACE_FILE) as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


# -- the Lease on the API server ----------------------------------------------


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _micro(t: datetime | None) -> str | None:
    # MicroTime's wire format: RFC 3339 with exactly six fractional digits.
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(spec: dict[str, Any]) -> LeaseRecord:
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        renew_time=_time(spec.get("renewTime")),
        acquire_time=_time(spec.get("acquireTime")),
        duration=float(spec.get("leaseDurationSeconds") or 0),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def spec_of(rec: LeaseRecord) -> dict[str, Any]:
    return {
        "holderIdentity": rec.holder,
        "renewTime": _micro(rec.renew_time),
        "acquireTime": _micro(rec.acquire_time),
        "leaseDurationSeconds": max(1, round(rec.duration)),
        "leaseTransitions": rec.transitions,
    }


def _now() -> datetime:
    return datetime.now(UTC)


class Elector:
    """One candidate's I/O: campaign until leader, renew while leader, release."""

    def __init__(
        self,
        api: client.ApiClient,
        name: str,
        namespace: str,
        me: str,
        timing: Timing = Timing(),
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        """`on_change(previous holder, new holder)` is called for every change of holder
        this process sees, its own included (metrics, logs)."""
        self.api, self.coord = api, client.CoordinationV1Api(api)
        self.name, self.namespace, self.me, self.timing = name, namespace, me, timing
        self.on_change = on_change
        self.seen: Seen | None = None
        self._rv: str | None = None
        self.holder = ""  # as last read or written
        self.leading = False
        self.last_renew = 0.0  # monotonic, of the last successful write as leader
        self.last_attempt = 0.0  # monotonic, of the last attempt, successful or not
        self.last_decision: Decision | None = None

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        # Bounded: a request hanging on a partitioned apiserver must not outlast the
        # renew deadline. The client's own timeout applies to the whole request.
        return await fn(*args, _request_timeout=self.timing.retry_period * 2)

    async def _read(self) -> LeaseRecord | None:
        try:
            obj = await self._call(self.coord.read_namespaced_lease, self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                self._rv = None
                return None
            raise
        self._rv = obj.metadata.resource_version
        return record_of(self.api.sanitize_for_serialization(obj.spec) or {})

    async def _write(self, rec: LeaseRecord) -> bool:
        """Create or update with the resourceVersion read; False if another wrote first."""
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec_of(rec),
        }
        try:
            if self._rv is None:
                obj = await self._call(self.coord.create_namespaced_lease, self.namespace, body)
            else:
                body["metadata"]["resourceVersion"] = self._rv
                obj = await self._call(
                    self.coord.replace_namespaced_lease, self.name, self.namespace, body
                )
        except ApiException as exc:
            if exc.status == 409:  # Conflict (update) or AlreadyExists (create)
                return False
            raise
        self._rv = obj.metadata.resource_version
        return True

    def _holder_is(self, holder: str) -> None:
        if holder != self.holder:
            prev, self.holder = self.holder, holder
            if self.on_change is not None:
                self.on_change(prev, holder)

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this process holds the Lease afterwards."""
        loop = asyncio.get_running_loop()
        self.last_attempt = loop.time()
        rec = await self._read()
        now = _now()
        self.seen = observe(self.seen, rec, now)
        d = self.last_decision = decide(self.seen, self.me, now, self.timing)
        if d.action is Action.FOLLOW:
            assert rec is not None
            self._holder_is(rec.holder)
            return False
        assert d.write is not None
        if not await self._write(d.write):
            return False  # another candidate wrote between our read and write
        self.seen = Seen(d.write, now)
        self.last_renew = loop.time()
        if d.action is not Action.RENEW:
            log.info(
                "leader election: %s %s Lease %s/%s (previous holder: %s)",
                self.me, d.action.value, self.namespace, self.name,
                (rec.holder if rec else "") or "none",
            )  # fmt: skip
        self._holder_is(self.me)
        return True

    async def _attempt(self, within: float | None = None) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), within)
        except _OUTAGE as exc:
            # An apiserver outage: a follower keeps trying; a leader keeps trying until
            # its renew deadline.
            log.warning("leader election: Lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        except Exception:
            log.exception("leader election: Lease %s/%s", self.namespace, self.name)
            return False

    async def _wake_on_change(self, wake: asyncio.Event) -> None:
        """Set `wake` whenever the Lease changes, so that a follower sees a release at
        once instead of at its next retry (a rollout's hand-over). Best effort: the
        campaign polls every retry period regardless."""
        while True:
            try:
                async with watch.Watch().stream(
                    self.coord.list_namespaced_lease,
                    self.namespace,
                    field_selector=f"metadata.name={self.name}",
                    timeout_seconds=300,
                ) as events:
                    async for _ in events:
                        wake.set()
            except _OUTAGE as exc:
                log.debug("leader election: watching Lease %s: %s", self.name, exc)
                await asyncio.sleep(self.timing.lease_duration)

    async def campaign(self, stopping: asyncio.Event) -> bool:
        """Until this process leads (True) or is asked to stop (False)."""
        wake = asyncio.Event()
        watcher = asyncio.create_task(self._wake_on_change(wake))
        try:
            while not stopping.is_set():
                wake.clear()
                if await self._attempt():
                    self.leading = True
                    return True
                pause = self.timing.retry_period
                d = self.last_decision
                if d is not None and d.action is Action.FOLLOW:
                    # Try again the moment the holder's lease runs out, not up to a
                    # retry period later.
                    pause = min(pause, d.expires_in + 0.01)
                await _first(pause, stopping, wake)
            return False
        finally:
            watcher.cancel()

    async def hold(self) -> None:
        """Renew every retry period; returns when leadership is lost: the renew deadline
        passed without a renewal, or another process holds the Lease."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.timing.retry_period)
            left = self.timing.renew_deadline - (loop.time() - self.last_renew)
            if await self._attempt(within=max(left, 0.1)):
                continue
            if self.holder and self.holder != self.me:
                log.error("leader election: %s lost the Lease to %s", self.me, self.holder)
                break
            if renew_overdue(self.last_renew, loop.time(), self.timing):
                log.error(
                    "leader election: %s could not renew the Lease within %.0f s",
                    self.me, self.timing.renew_deadline,
                )  # fmt: skip
                break
        self.leading = False

    async def release(self) -> bool:
        """Step down: write the Lease released if this process still holds it."""
        try:
            rec = await self._read()
            if rec is None or rec.holder != self.me:
                return False
            ok = await self._write(released(rec, _now()))
        except _OUTAGE as exc:
            log.warning(
                "leader election: releasing Lease %s/%s: %s", self.namespace, self.name, exc
            )
            return False
        self.leading = False
        if ok:
            log.info("leader election: %s released Lease %s/%s", self.me, self.namespace, self.name)
            self._holder_is("")
        return ok


async def _first(at_most: float, *events: asyncio.Event) -> None:
    """Until one of `events` is set, `at_most` seconds."""
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=at_most, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def healthy(elector: Elector | None, now: float, timing: Timing = Timing()) -> bool:
    """Liveness: the election loop still makes attempts (each is bounded in time, so a
    loop that stopped attempting is stuck). Without election, always."""
    if elector is None or elector.last_attempt == 0.0:
        return True
    return now - elector.last_attempt < 3 * timing.renew_deadline


__all__ = [
    "Action",
    "Decision",
    "Elector",
    "LeaseRecord",
    "Seen",
    "Timing",
    "decide",
    "healthy",
    "identity",
    "lease_namespace",
    "observe",
    "released",
    "renew_overdue",
]
