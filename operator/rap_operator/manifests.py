"""Kubernetes objects the operator creates, built by pure functions (testable without a cluster)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

from analyzer_runtime.contract.labels import (
    APP_NAME,
    LABEL_APP_COMPONENT,
    LABEL_APP_NAME,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    LABEL_RUN_UID,
    MANAGED_BY,
    SHARD_COMPONENT,
)
from analyzer_runtime.ledger.connect import POOL_MODE_ENV
from analyzer_runtime.ledger.shards import STOP_GRACE_ENV
from rap_operator import queue
from rap_operator.config import OperatorConfig, database_secret


class JobKind(Protocol):
    """What a Job needs from its run's kind (kinds.RunKind has it)."""

    subcommand: str

    def pod_env(self, spec: dict[str, Any], /) -> list[dict[str, Any]]: ...


GROUP_VERSION = "rapanalyzer.io/v1alpha1"


def job_name(name: str, uid: str) -> str:
    """`<name>-<hash>`: unique per resource incarnation, within the 63 characters a
    Job name may have when it becomes the pods' `job-name` label."""
    suffix = hashlib.sha256(uid.encode()).hexdigest()[:6]
    return f"{name[: 63 - 7].rstrip('-.')}-{suffix}"


def labels(kind: str, name: str, uid: str) -> dict[str, str]:
    return {
        LABEL_APP_NAME: APP_NAME,
        LABEL_APP_COMPONENT: SHARD_COMPONENT,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_KIND: kind.lower(),
        LABEL_RUN: name[:63],
        LABEL_RUN_UID: uid,
    }


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion", GROUP_VERSION),
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _resources(spec: dict[str, Any]) -> dict[str, Any]:
    # spec.resources is shorthand for spec.podTemplate.resources (the models refuse both).
    res = spec.get("resources") or (spec.get("podTemplate") or {}).get("resources") or {}
    return {k: {n: str(q) for n, q in v.items()} for k, v in res.items() if v}


# Where the pods may write: the root filesystem is read-only.
TMP_VOLUME = "tmp"
TMP_PATH = "/tmp"
_TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")


def pod_security_context(config: OperatorConfig) -> dict[str, Any]:
    """The pod's securityContext: Pod Security Standards `restricted` (non-root, the
    runtime's default seccomp profile), as the image's numeric user."""
    ctx: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if config.pod_run_as_user is not None:
        uid = config.pod_run_as_user
        ctx |= {"runAsUser": uid, "runAsGroup": uid, "fsGroup": uid}
    return ctx


CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}


def _env(
    spec: dict[str, Any], config: OperatorConfig, extra: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    secret, key = database_secret(spec, config)
    env: list[dict[str, Any]] = [
        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}},
        {"name": "METRICS_PORT", "value": str(config.pod_metrics_port)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        # The root filesystem is read-only; libraries put caches and config under HOME.
        {"name": "HOME", "value": TMP_PATH},
    ]
    # Pods reach the database the way the operator does: through PgBouncer in
    # transaction pooling when the chart says so (analyzer_runtime/ledger/connect.py).
    if config.pool_mode:
        env.append({"name": POOL_MODE_ENV, "value": config.pool_mode})
    # How long a stopped (preempted, drained) shard finishes its batch: the chart's.
    if config.stop_grace:
        env.append({"name": STOP_GRACE_ENV, "value": config.stop_grace})
    # The kind's credentials (LLM API key, Genius token, ...) come as secretKeyRefs:
    # never in the Job spec, the status or an Event.
    env.extend(extra)
    return env


def kind_job(body: dict[str, Any], config: OperatorConfig, kind: JobKind) -> dict[str, Any]:
    """The Indexed Job of a run of any kind (its subcommand and credentials)."""
    return run_job(body, config, subcommand=kind.subcommand, extra_env=kind.pod_env(body["spec"]))


def run_job(
    body: dict[str, Any],
    config: OperatorConfig,
    *,
    subcommand: str,
    extra_env: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The Indexed Job of a run: one index per shard, owned by the resource. Its pods
    pass Pod Security `restricted`; spec.podTemplate adds labels, annotations and
    scheduling. No ttlSecondsAfterFinished: it is set once the operator has recorded
    the final phase (job_patch_after_finish), so the Job cannot vanish before that."""
    meta, spec = body["metadata"], body["spec"]
    name, uid = meta["name"], meta["uid"]
    shards = int(spec.get("shards", 1))
    retry = spec.get("retry") or {}
    template = spec.get("podTemplate") or {}
    lbl = labels(body["kind"], name, uid)
    container: dict[str, Any] = {
        "name": "shard",
        "image": spec.get("image") or config.image,
        "imagePullPolicy": spec.get("imagePullPolicy") or config.image_pull_policy,
        "command": [*config.command_for(subcommand), "--run-id", uid],
        "env": _env(spec, config, extra_env),
        "securityContext": copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": TMP_PATH}],
    }
    if config.pod_metrics_port > 0:
        container["ports"] = [{"name": "metrics", "containerPort": config.pod_metrics_port}]
    if res := _resources(spec):
        container["resources"] = res
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # Shards talk to Postgres and upstream APIs, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(config),
        "containers": [container],
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {}}],
    }
    if config.service_account:
        pod_spec["serviceAccountName"] = config.service_account
    if node_selector := template.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(node_selector)
    if tolerations := template.get("tolerations"):
        pod_spec["tolerations"] = [
            {k: t[k] for k in _TOLERATION_KEYS if t.get(k) is not None} for t in tolerations
        ]
    if priority_class := template.get("priorityClassName"):
        pod_spec["priorityClassName"] = priority_class
    # The user's labels under the operator's own (the models refuse reserved keys).
    pod_meta: dict[str, Any] = {"labels": {**(template.get("labels") or {}), **lbl}}
    if annotations := template.get("annotations"):
        pod_meta["annotations"] = dict(annotations)
    queued = queue.queue_name(spec) is not None
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": shards,
        "parallelism": parallelism(spec),
        "backoffLimitPerIndex": int(retry.get("backoffLimitPerIndex", 3)),
        # Never two pods on one index at once: a replacement starts only after the
        # failed pod is fully gone (the protocol tolerates overlap, but why pay for it).
        "podReplacementPolicy": "Failed",
        # A queued Job starts suspended, as Kueue's webhook would make it: Kueue
        # unsuspends it once admitted.
        "suspend": queued or bool(spec.get("suspend", False)),
        "template": {"metadata": pod_meta, "spec": pod_spec},
    }
    if (deadline := spec.get("activeDeadlineSeconds")) is not None:
        job_spec["activeDeadlineSeconds"] = int(deadline)
    job_meta: dict[str, Any] = {
        "name": job_name(name, uid),
        "namespace": meta["namespace"],
        "labels": {**queue.job_labels(spec), **lbl},
        "ownerReferences": [owner_reference(body)],
    }
    if annotations := queue.job_annotations(spec, job_spec["parallelism"]):
        job_meta["annotations"] = annotations
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": job_spec}


def parallelism(spec: dict[str, Any]) -> int:
    """The Job's parallelism: the spec's (0 when the connection budget leaves none),
    else one pod per shard."""
    value = spec.get("parallelism")
    return int(spec.get("shards", 1)) if value is None else int(value)


def job_patch_for_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that makes a running Job follow the resource's spec: the
    fields of MUTABLE_AFTER_PLANNING a Job takes while it runs (suspend, parallelism,
    activeDeadlineSeconds; null removes a deadline that was taken out of the spec).
    ttlSecondsAfterFinished is the other one: see job_patch_after_finish.

    A queued Job's suspend and parallelism are Kueue's (it admits, partially admits
    and preempts by writing them; its webhook refuses other changes while admitted):
    only the deadline follows the spec."""
    deadline = spec.get("activeDeadlineSeconds")
    if queue.queue_name(spec) is not None:
        return {"spec": {"activeDeadlineSeconds": int(deadline) if deadline is not None else None}}
    return {
        "spec": {
            "suspend": bool(spec.get("suspend", False)),
            "parallelism": parallelism(spec),
            "activeDeadlineSeconds": int(deadline) if deadline is not None else None,
        }
    }


def job_patch_after_finish(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that sets the Job's ttlSecondsAfterFinished, for the refresh
    that has recorded the run's final phase (Succeeded or Failed) on the resource;
    None when the spec sets no TTL (the Job then stays until the resource is deleted).

    The Job never has a TTL before that: a TTL shorter than the status refresh would
    let the TTL controller delete the Job before the operator saw how it ended. The
    TTL still counts from the Job's own finish time, so a Job whose TTL has already
    run out is deleted right after this patch. Idempotent: patching again is harmless."""
    ttl = spec.get("ttlSecondsAfterFinished")
    if ttl is None:
        return None
    return {"spec": {"ttlSecondsAfterFinished": int(ttl)}}
