"""Pod and container status documents the process kubelet patches.

Shapes follow what the real kubelet writes, because the Job controller and
kubectl read them: ``containerStatuses[].state`` holds exactly one of
waiting/running/terminated (the list has no merge key, so each patch replaces
it whole) and a signal death is exit code 128+N.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any

from rap_devtools.kubelet_env import HOST_IP
from rap_devtools.kubelet_node import now_rfc3339

JSON = dict[str, Any]


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    container: JSON
    proc: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    restart_count: int = 0
    last_state: JSON = field(default_factory=dict)
    terminating: bool = False
    exited: bool = False
    restart_pending: bool = False  # exited, restartPolicy wants it back


def container_status(run: PodRun, state: JSON, ready: bool) -> JSON:
    status: JSON = {
        "name": run.container["name"],
        "image": run.container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": run.restart_count,
        "state": state,
    }
    if run.proc is not None:
        status["containerID"] = f"process://{run.proc.pid}"
    if run.last_state:
        status["lastState"] = run.last_state
    return status


def conditions(ready: bool, reason: str = "") -> list[JSON]:
    now = now_rfc3339()
    out = []
    for ctype, value in (
        ("PodReadyToStartContainers", True),
        ("Initialized", True),
        ("ContainersReady", ready),
        ("Ready", ready),
    ):
        cond: JSON = {"type": ctype, "status": "True" if value else "False"}
        cond["lastTransitionTime"] = now
        if not value and reason:
            cond["reason"] = reason
        out.append(cond)
    return out


def running_status(pod: JSON, run: PodRun) -> JSON:
    state = {"running": {"startedAt": run.started_at}}
    return {
        "phase": "Running",
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": HOST_IP,
        "podIPs": [{"ip": HOST_IP}],
        "startTime": (pod.get("status") or {}).get("startTime") or run.started_at,
        "conditions": conditions(True),
        "containerStatuses": [container_status(run, state, True)],
    }


def terminated_state(run: PodRun, exit_code: int, reason: str = "", message: str = "") -> JSON:
    term: JSON = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": run.started_at,
        "finishedAt": now_rfc3339(),
    }
    if run.proc is not None:
        term["containerID"] = f"process://{run.proc.pid}"
    if exit_code > 128:
        term["signal"] = exit_code - 128
    if message:
        term["message"] = message
    return term
