"""Kubernetes objects the operator creates, built by pure functions (testable without a cluster)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rap_operator.config import OperatorConfig

if TYPE_CHECKING:
    from rap_operator.kinds import RunKind

GROUP_VERSION = "rapanalyzer.io/v1alpha1"
LABEL_RUN = "rapanalyzer.io/run"
LABEL_RUN_UID = "rapanalyzer.io/run-uid"
LABEL_KIND = "rapanalyzer.io/kind"


def job_name(name: str, uid: str) -> str:
    """`<name>-<hash>`: unique per resource incarnation, within the 63 characters a
    Job name may have when it becomes the pods' `job-name` label."""
    suffix = hashlib.sha256(uid.encode()).hexdigest()[:6]
    return f"{name[: 63 - 7].rstrip('-.')}-{suffix}"


def labels(kind: str, name: str, uid: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "rap-analyzer",
        "app.kubernetes.io/component": "shard",
        "app.kubernetes.io/managed-by": "rap-analyzer-operator",
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


def database_secret(spec: dict[str, Any], config: OperatorConfig) -> tuple[str, str]:
    ref = (spec.get("database") or {}).get("secretRef") or {}
    return ref.get("name") or config.database_secret, ref.get("key") or config.database_secret_key


def _resources(spec: dict[str, Any]) -> dict[str, Any]:
    res = spec.get("resources") or {}
    return {k: {n: str(q) for n, q in v.items()} for k, v in res.items() if v}


def _env(
    spec: dict[str, Any], config: OperatorConfig, extra: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    secret, key = database_secret(spec, config)
    env: list[dict[str, Any]] = [
        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}},
        {"name": "METRICS_PORT", "value": str(config.pod_metrics_port)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    # The kind's credentials (LLM API key, Genius token, ...) come as secretKeyRefs:
    # never in the Job spec, the status or an Event.
    env.extend(extra)
    return env


def analysis_job(body: dict[str, Any], config: OperatorConfig) -> dict[str, Any]:
    """The Indexed Job of an AnalysisRun: one index per shard, owned by the resource."""
    from rap_operator.kinds import ANALYSIS

    return kind_job(body, config, ANALYSIS)


def kind_job(body: dict[str, Any], config: OperatorConfig, kind: RunKind) -> dict[str, Any]:
    """The Indexed Job of a run of any kind (its subcommand and credentials)."""
    return run_job(body, config, subcommand=kind.subcommand, extra_env=kind.pod_env(body["spec"]))


def run_job(
    body: dict[str, Any],
    config: OperatorConfig,
    *,
    subcommand: str,
    extra_env: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The Indexed Job of a run: one index per shard, owned by the resource."""
    meta, spec = body["metadata"], body["spec"]
    name, uid = meta["name"], meta["uid"]
    shards = int(spec.get("shards", 1))
    retry = spec.get("retry") or {}
    lbl = labels(body["kind"], name, uid)
    container: dict[str, Any] = {
        "name": "shard",
        "image": spec.get("image") or config.image,
        "imagePullPolicy": spec.get("imagePullPolicy") or config.image_pull_policy,
        "command": [*config.command_for(subcommand), "--run-id", uid],
        "env": _env(spec, config, extra_env),
    }
    if config.pod_metrics_port > 0:
        container["ports"] = [{"name": "metrics", "containerPort": config.pod_metrics_port}]
    if res := _resources(spec):
        container["resources"] = res
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if config.service_account:
        pod_spec["serviceAccountName"] = config.service_account
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": shards,
        "parallelism": int(spec.get("parallelism") or shards),
        "backoffLimitPerIndex": int(retry.get("backoffLimitPerIndex", 3)),
        # Never two pods on one index at once: a replacement starts only after the
        # failed pod is fully gone (the protocol tolerates overlap, but why pay for it).
        "podReplacementPolicy": "Failed",
        "suspend": bool(spec.get("suspend", False)),
        "template": {"metadata": {"labels": lbl}, "spec": pod_spec},
    }
    if (ttl := spec.get("ttlSecondsAfterFinished")) is not None:
        job_spec["ttlSecondsAfterFinished"] = int(ttl)
    if (deadline := spec.get("activeDeadlineSeconds")) is not None:
        job_spec["activeDeadlineSeconds"] = int(deadline)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name, uid),
            "namespace": meta["namespace"],
            "labels": lbl,
            "ownerReferences": [owner_reference(body)],
        },
        "spec": job_spec,
    }


def job_patch_for_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The Job fields that follow the resource's spec after creation."""
    shards = int(spec.get("shards", 1))
    return {
        "spec": {
            "suspend": bool(spec.get("suspend", False)),
            "parallelism": int(spec.get("parallelism") or shards),
        }
    }
