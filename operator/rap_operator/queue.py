"""Kueue, as the run's status sees it: pure functions from the run's spec, its Job and
Kueue's Workload of that Job to what the Job carries and what the status says.

With `spec.queueName` (or the pod template's kueue.x-k8s.io/queue-name label) the
Job is Kueue's to start and stop: it is created suspended, Kueue unsuspends it when
its ClusterQueue has quota (perhaps with fewer pods: partial admission, which the
Job allows down to one pod, since every shard pod is useful alone) and suspends it
again to preempt it. The operator then never writes the Job's `suspend` or
`parallelism`: `spec.suspend` deactivates the Workload (`spec.active: false`, how
Kueue's documentation stops a queued job) instead.

Workload conditions read (kueue.x-k8s.io v1beta1/v1beta2): `QuotaReserved` (False
while it waits: reason Pending or Inadmissible, with Kueue's message), `Admitted`,
`Evicted` (True with reason Preempted, InactiveWorkload, PodsReadyTimeout ...).
`status.admission.podSetAssignments[].count` is what was admitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analyzer_runtime.contract.labels import (
    MIN_PARALLELISM_ANNOTATION,
    PRIORITY_CLASS_LABEL,
    QUEUE_LABEL,
)

JSON = dict[str, Any]
GROUP = "kueue.x-k8s.io"
# Labels Kueue reads on the Job that users may pass through spec.podTemplate.labels.
PASSED_LABELS = (QUEUE_LABEL, PRIORITY_CLASS_LABEL)
ADMITTED, QUEUED, PREEMPTED = "QueueAdmitted", "Queued", "Preempted"
CONDITIONS = (ADMITTED, QUEUED, PREEMPTED)


def queue_name(spec: JSON) -> str | None:
    """The LocalQueue the run names: spec.queueName, else the pod template's label."""
    labels = (spec.get("podTemplate") or {}).get("labels") or {}
    return spec.get("queueName") or labels.get(QUEUE_LABEL) or None


def job_labels(spec: JSON) -> dict[str, str]:
    """The Kueue labels the Job itself carries (Kueue reads the Job's, not the pods')."""
    if (queue := queue_name(spec)) is None:
        return {}
    labels = (spec.get("podTemplate") or {}).get("labels") or {}
    out = {k: str(labels[k]) for k in PASSED_LABELS if k in labels}
    return {**out, QUEUE_LABEL: queue}


def job_annotations(spec: JSON, parallelism: int) -> dict[str, str]:
    """Partial admission down to one pod; Kueue accepts the annotation only when
    0 < N < min(parallelism, completions)."""
    if queue_name(spec) is None or min(parallelism, int(spec.get("shards", 1))) <= 1:
        return {}
    return {MIN_PARALLELISM_ANNOTATION: "1"}


def owner_job_uid(workload: JSON) -> str | None:
    """The uid of the Job a Workload belongs to (Kueue's job integration owns it so)."""
    for ref in (workload.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("apiVersion", "").startswith("batch/"):
            return str(ref.get("uid"))
    return None


def essentials(workload: JSON) -> JSON:
    """What the status needs of a Workload (the operator keeps one per queued Job; a
    whole Workload carries its pod templates)."""
    meta = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    return {
        "apiVersion": workload.get("apiVersion"),
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "ownerReferences") if k in meta
        },
        "spec": {
            "active": spec.get("active", True),
            "podSets": [{"count": p.get("count")} for p in spec.get("podSets") or []],
        },
        "status": {
            "conditions": status.get("conditions") or [],
            "admission": status.get("admission") or {},
        },
    }


@dataclass(frozen=True)
class Standing:
    """Where a run's Workload stands in its queue."""

    queue: str
    workload: str | None = None  # None: Kueue has not created it (yet)
    active: bool = True
    admitted: bool = False
    cluster_queue: str | None = None
    admitted_pods: int | None = None
    requested_pods: int | None = None
    waiting_reason: str | None = None  # QuotaReserved=False: Pending, Inadmissible
    waiting_message: str | None = None
    evicted_reason: str | None = None  # Evicted=True: Preempted, InactiveWorkload ...
    evicted_message: str | None = None
    finished: bool = False

    @property
    def preempted(self) -> bool:
        return self.evicted_reason == "Preempted"

    @property
    def partial(self) -> bool:
        return (
            self.admitted_pods is not None
            and self.requested_pods is not None
            and self.admitted_pods < self.requested_pods
        )


def standing(queue: str, workload: JSON | None) -> Standing:
    if workload is None:
        return Standing(queue)
    status = workload.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or []}

    def true(kind: str) -> JSON | None:
        c = conds.get(kind)
        return c if c is not None and c.get("status") == "True" else None

    # Evicted (or, since Kueue v0.9, Preempted) is True from the decision on, while
    # the admission is still held until the Job's pods are gone: not admitted from then.
    evicted = true("Evicted") or true("Preempted")
    if evicted is not None and evicted.get("type") == "Preempted":
        evicted = {**evicted, "reason": "Preempted"}
    admitted = true("Admitted") is not None and evicted is None
    reserved = conds.get("QuotaReserved")
    waiting = reserved if reserved is not None and reserved.get("status") == "False" else None
    admission = status.get("admission") or {}
    counts = [int(a.get("count") or 0) for a in admission.get("podSetAssignments") or []]
    requested = [
        int(p.get("count") or 0) for p in (workload.get("spec") or {}).get("podSets") or []
    ]
    return Standing(
        queue=queue,
        workload=(workload.get("metadata") or {}).get("name"),
        active=(workload.get("spec") or {}).get("active", True) is not False,
        admitted=admitted,
        cluster_queue=admission.get("clusterQueue") if admitted else None,
        admitted_pods=sum(counts) if admitted and counts else None,
        requested_pods=sum(requested) if requested else None,
        waiting_reason=waiting.get("reason") if waiting else None,
        waiting_message=waiting.get("message") if waiting else None,
        evicted_reason=evicted.get("reason") if evicted else None,
        evicted_message=evicted.get("message") if evicted else None,
        finished=true("Finished") is not None,
    )


def held(st: Standing) -> tuple[str, str, str]:
    """(phase, reason, message) of a run whose Job Kueue keeps suspended: Suspended when
    it was preempted (it ran, and will resume where it stopped), else Pending."""
    if st.preempted:
        return "Suspended", "Preempted", f"preempted by Kueue: {st.evicted_message or ''}".strip()
    return "Pending", "Queued", waiting_message(st)


def waiting_message(st: Standing) -> str:
    if st.workload is None:
        return (
            f"waiting for Kueue: the Job names LocalQueue {st.queue} and has no Workload yet"
            " (is Kueue installed and managing batch/Job?)"
        )
    why = st.waiting_message or st.evicted_message or "waiting for quota"
    return f"queued in LocalQueue {st.queue}: {why}"


def admitted_message(st: Standing) -> str:
    pods = ""
    if st.admitted_pods is not None:
        pods = f" with {st.admitted_pods} of {st.requested_pods} shard pods at once"
        if st.partial:
            pods += " (partial admission: the other shards run as these finish)"
    return f"admitted by ClusterQueue {st.cluster_queue}{pods}"


@dataclass(frozen=True)
class QueueEvent:
    type: str
    reason: str
    message: str


def conditions(st: Standing, previous: JSON, now: datetime, generation: int) -> list[JSON]:
    """QueueAdmitted, Queued and (once preempted) Preempted, keeping each one's
    lastTransitionTime while its status stays."""
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    if st.admitted:
        rows = [
            (ADMITTED, "True", "Admitted", admitted_message(st)),
            (QUEUED, "False", "Admitted", admitted_message(st)),
        ]
    else:
        reason = (
            "Preempted" if st.preempted else st.waiting_reason or st.evicted_reason or "Pending"
        )
        rows = [
            (ADMITTED, "False", reason, waiting_message(st)),
            (QUEUED, "True", reason, waiting_message(st)),
        ]
    if st.preempted:
        rows.append((PREEMPTED, "True", "Preempted", st.evicted_message or "preempted by Kueue"))
    elif PREEMPTED in before:
        rows.append((PREEMPTED, "False", "Readmitted", "readmitted after a preemption"))
    out = []
    for ctype, status, reason, message in rows:
        old = before.get(ctype) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message[:1000],
                "observedGeneration": generation,
                "lastTransitionTime": since or now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return out


def state_of(conditions: list[JSON]) -> str | None:
    """Where the conditions say the run stands: preempted, admitted, queued (None:
    never queued)."""
    true = {c.get("type") for c in conditions if c.get("status") == "True"}
    if PREEMPTED in true:
        return "preempted"
    if ADMITTED in true:
        return "admitted"
    return "queued" if QUEUED in true else None


def events(new: list[JSON], last: str | None) -> list[QueueEvent]:
    """The Events of a move from `last` (the state the last Events told: the operator's
    memory, else the previous status) to these conditions: Queued, QueueAdmitted (or
    Readmitted after a preemption), Preempted, Evicted. One per move, however many
    passes see it (a pass may read a status older than its own last patch)."""
    state = state_of(new)
    if state == last:
        return []
    now = {c["type"]: c for c in new}
    admitted = now[ADMITTED]
    if state == "admitted":
        reason = "Readmitted" if last == "preempted" else ADMITTED
        return [QueueEvent("Normal", reason, admitted["message"])]
    if state == "preempted":
        return [QueueEvent("Warning", PREEMPTED, now[PREEMPTED]["message"])]
    if admitted["reason"] == "InactiveWorkload":  # spec.suspend: the phase Event tells it
        return []
    if last == "admitted":  # evicted for another cause than a preemption
        return [QueueEvent("Warning", "Evicted", admitted["message"])]
    return [QueueEvent("Normal", QUEUED, admitted["message"])]


def active_patch(spec: JSON, st: Standing) -> JSON | None:
    """The Workload patch that makes spec.suspend hold: a suspended run's Workload is
    deactivated (Kueue evicts it and suspends the Job), a resumed one active again."""
    if st.workload is None:
        return None
    want = not bool(spec.get("suspend"))
    return None if st.active == want else {"spec": {"active": want}}
