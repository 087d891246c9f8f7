"""Why a run's pods are not working, in words: pod creation refused (Pod Security,
quota), unschedulable, image pull errors, OOM kills. Read from the API only when the
Job's counts say something is wrong, so a healthy run costs no extra request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from analyzer_runtime.contract.labels import LABEL_RUN_UID
from rap_operator import kube

JSON = dict[str, Any]
# Seconds a Job may have no pods before its FailedCreate Events are looked at.
CREATE_GRACE_SECONDS = 3.0
_WAITING = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
}


@dataclass(frozen=True, slots=True)
class PodProblem:
    reason: str
    message: str


def _age(obj: JSON, now: datetime) -> float:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return 0.0
    if isinstance(created, str):
        created = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return (now - created).total_seconds()


def from_pods(pods: list[JSON]) -> list[PodProblem]:
    """Problems of pods as the API returns them (pure: tests call it directly)."""
    out: list[PodProblem] = []
    for pod in pods:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        for c in status.get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                out.append(
                    PodProblem(
                        c.get("reason") or "Unschedulable", f"pod {name}: {c.get('message')}"
                    )
                )
        for cs in status.get("containerStatuses") or []:
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") in _WAITING:
                out.append(
                    PodProblem(waiting["reason"], f"pod {name}: {waiting.get('message') or ''}")
                )
            term = state.get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
            if term.get("reason") == "OOMKilled":
                out.append(
                    PodProblem(
                        "OOMKilled",
                        f"pod {name} was killed for exceeding its memory limit (OOMKilled);"
                        " raise spec.resources.limits.memory or lower spec.batchSize",
                    )
                )
    return out


async def problems(job: JSON | None, now: datetime | None = None) -> list[PodProblem]:
    """What is wrong with the Job's pods; nothing when the operator may not look."""
    try:
        return await _problems(job, now)
    except ApiException as exc:
        if exc.status == 403:  # RBAC without pods/events list: a status without details
            return []
        raise


async def _problems(job: JSON | None, now: datetime | None) -> list[PodProblem]:
    if job is None:
        return []
    now = now or datetime.now(UTC)
    spec, status = job.get("spec") or {}, job.get("status") or {}
    conds = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    if spec.get("suspend") or conds & {"Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"}:
        return []
    meta = job["metadata"]
    active, ready = int(status.get("active") or 0), int(status.get("ready") or 0)
    found: list[PodProblem] = []
    if active == 0 and not status.get("succeeded") and _age(job, now) > CREATE_GRACE_SECONDS:
        for ev in await kube.events_for(meta["namespace"], "Job", meta["name"]):
            if ev.get("reason") == "FailedCreate":
                found = [PodProblem("FailedCreate", str(ev.get("message") or ""))]
    if active > ready or status.get("failed"):
        uid = (meta.get("labels") or {}).get(LABEL_RUN_UID)
        if uid:
            found += from_pods(await kube.pods_of_run(meta["namespace"], uid))
    return found
