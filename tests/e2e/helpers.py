"""Small builders and predicates shared by the e2e tests."""

from __future__ import annotations

import sys
from typing import Any

from rap_devtools.kubeapi import ApiError, KubeApi

JSON = dict[str, Any]
PYTHON = sys.executable


def indexed_job(
    name: str,
    command: list[str],
    *,
    completions: int,
    parallelism: int,
    backoff_limit_per_index: int | None = None,
    owner: JSON | None = None,
    grace: int = 5,
) -> JSON:
    spec: JSON = {
        "completionMode": "Indexed",
        "completions": completions,
        "parallelism": parallelism,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": grace,
                "containers": [{"name": "main", "image": "ignored:latest", "command": command}],
            }
        },
    }
    if backoff_limit_per_index is not None:
        spec["backoffLimitPerIndex"] = backoff_limit_per_index
    meta: JSON = {"name": name}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def jobs_path(ns: str) -> str:
    return f"/apis/batch/v1/namespaces/{ns}/jobs"


def condition(obj: JSON, ctype: str) -> JSON | None:
    """The condition of ``ctype`` if its status is "True"."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return cond
    return None


def finished_job(kube: KubeApi, ns: str, name: str) -> JSON | None:
    """The Job once it is Complete or Failed, else None (for wait_for)."""
    job = kube.get(f"{jobs_path(ns)}/{name}")
    if condition(job, "Complete") or condition(job, "Failed"):
        return job
    return None


def gone(kube: KubeApi, path: str) -> bool:
    try:
        kube.get(path)
    except ApiError as e:
        if e.status == 404:
            return True
        raise
    return False


def pods_of_job(kube: KubeApi, ns: str, job: str) -> list[JSON]:
    return kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"job-name={job}")["items"]


def describe_pods(kube: KubeApi, ns: str) -> str:
    """One line per pod: what a person would look at when a wait times out."""
    lines = []
    for p in kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]:
        st = p.get("status") or {}
        cs = (st.get("containerStatuses") or [{}])[0].get("state")
        lines.append(f"{p['metadata']['name']} node={p['spec'].get('nodeName')} "
                     f"phase={st.get('phase')} state={cs}")  # fmt: skip
    return "\n".join(lines) or "(no pods)"
