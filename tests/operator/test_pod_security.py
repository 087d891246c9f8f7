"""The shard pods pass the Pod Security Standards' `restricted` profile, so runs work in
namespaces that enforce it (`pod-security.kubernetes.io/enforce: restricted`).

`restricted_violations` is a pure checker of the profile's rules (baseline's and
restricted's, Kubernetes v1.30+: https://kubernetes.io/docs/concepts/security/pod-security-standards/)
over a Job manifest's pod template; a second test proves that it catches each rule."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rap_operator import manifests
from rap_operator.config import OperatorConfig

JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
UID = "0b6c1c6e-4a8e-4a7e-9d43-2f1e7f0e9a11"

SAFE_SYSCTLS = frozenset(
    {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
     "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
     "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
     "net.ipv4.tcp_keepalive_probes"}
)  # fmt: skip
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
     "projected", "secret"}
)  # fmt: skip
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t",
                           "container_engine_t"})  # fmt: skip


def _containers(pod: JSON) -> Iterator[tuple[str, JSON]]:
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for c in pod.get(kind) or []:
            yield f"{kind}[{c.get('name')}]", c


def restricted_violations(job: JSON) -> list[str]:
    """Why the Job's pods would be refused in a namespace enforcing `restricted`
    (empty when they would be admitted)."""
    template = job["spec"]["template"]
    pod: JSON = template["spec"]
    pod_ctx: JSON = pod.get("securityContext") or {}
    containers = list(_containers(pod))
    out: list[str] = []

    # ---- baseline -----------------------------------------------------------------
    if (pod_ctx.get("windowsOptions") or {}).get("hostProcess"):
        out.append("pod: windowsOptions.hostProcess")
    for ns in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(ns):
            out.append(f"pod: {ns}")
    for key, value in ((template.get("metadata") or {}).get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            out.append(f"pod: AppArmor annotation {key}={value}")
    for sysctl in pod_ctx.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append(f"pod: unsafe sysctl {sysctl.get('name')}")
    for where, ctx in [("pod", pod_ctx)] + [(w, c.get("securityContext") or {}) for w, c in
                                            containers]:  # fmt: skip
        apparmor = (ctx.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            out.append(f"{where}: appArmorProfile {apparmor}")
        selinux = ctx.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES:
            out.append(f"{where}: seLinuxOptions.type {selinux['type']}")
        if selinux.get("user") or selinux.get("role"):
            out.append(f"{where}: seLinuxOptions.user/role")
        if ctx.get("runAsUser") == 0:
            out.append(f"{where}: runAsUser 0")
        if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
            out.append(f"{where}: seccompProfile Unconfined")
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"{where}: windowsOptions.hostProcess")
    for where, c in containers:
        ctx = c.get("securityContext") or {}
        if ctx.get("privileged"):
            out.append(f"{where}: privileged")
        if ctx.get("procMount", "Default") != "Default":
            out.append(f"{where}: procMount {ctx['procMount']}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{where}: hostPort {port['hostPort']}")
        caps = ctx.get("capabilities") or {}
        # restricted: drop ALL; add at most NET_BIND_SERVICE (a subset of baseline's).
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities.drop lacks ALL")
        for cap in caps.get("add") or []:
            if cap != "NET_BIND_SERVICE":
                out.append(f"{where}: capabilities.add {cap}")
        # ---- restricted ---------------------------------------------------------------
        if ctx.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation is not false")
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"{where}: runAsNonRoot is not true (pod or container)")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{where}: seccompProfile is not RuntimeDefault or Localhost")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"volume {volume.get('name')}: {', '.join(sorted(kinds))}")
    return out


# ---- the operator's Jobs ------------------------------------------------------------


def body(kind: str = "AnalysisRun", **spec: Any) -> JSON:
    base = {"analyzer": "algorithmic"} if kind == "AnalysisRun" else {"artists": ["A"]}
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "demo", "namespace": "rap", "uid": UID},
        "spec": {**base, "shards": 4, **spec},
    }


POD_TEMPLATE = {
    "labels": {"team": "data"},
    "annotations": {"example.com/owner": "data"},
    "nodeSelector": {"pool": "batch"},
    "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": "low",
    "resources": {"limits": {"memory": "1Gi"}},
}


@pytest.mark.parametrize(
    "job",
    [
        manifests.run_job(body(), OperatorConfig(), subcommand="analyze"),
        manifests.run_job(body(podTemplate=POD_TEMPLATE), OperatorConfig(), subcommand="analyze"),
        manifests.run_job(
            body("ScrapeJob"),
            OperatorConfig(service_account="runner"),
            subcommand="scrape",
            extra_env=[
                {
                    "name": "GENIUS_ACCESS_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "g", "key": "t"}},
                }
            ],
        ),
        manifests.run_job(body(), OperatorConfig(pod_run_as_user=None), subcommand="analyze"),
    ],
    ids=["analysisrun", "with-pod-template", "scrapejob", "uid-from-the-platform"],
)
def test_the_operators_jobs_pass_the_restricted_profile(job: JSON) -> None:
    assert restricted_violations(job) == []


def test_every_shipped_example_passes_too() -> None:
    jobs = 0
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["kind"] == "Job":  # the seed and adopt Jobs people apply themselves
            assert restricted_violations(doc) == [], path
            jobs += 1
            continue
        doc["metadata"] |= {"namespace": "rap", "uid": UID}
        sub = "scrape" if doc["kind"] == "ScrapeJob" else "analyze"
        assert restricted_violations(manifests.run_job(doc, OperatorConfig(), subcommand=sub)) == []
    assert jobs == 2


# ---- the checker catches what the profile refuses -----------------------------------


def _pod(job: JSON) -> JSON:
    return job["spec"]["template"]["spec"]


def _ctr(job: JSON) -> JSON:
    return _pod(job)["containers"][0]


def _sc(job: JSON) -> JSON:
    return _ctr(job)["securityContext"]


MUTATIONS: dict[str, Callable[[JSON], None]] = {
    "hostNetwork": lambda j: _pod(j).update(hostNetwork=True),
    "hostPID": lambda j: _pod(j).update(hostPID=True),
    "privileged": lambda j: _sc(j).update(privileged=True),
    "escalation unset": lambda j: _sc(j).pop("allowPrivilegeEscalation"),
    "escalation true": lambda j: _sc(j).update(allowPrivilegeEscalation=True),
    "runAsNonRoot unset": lambda j: _pod(j)["securityContext"].pop("runAsNonRoot"),
    "container runAsNonRoot false": lambda j: _sc(j).update(runAsNonRoot=False),
    "runAsUser 0": lambda j: _pod(j)["securityContext"].update(runAsUser=0),
    "container runAsUser 0": lambda j: _sc(j).update(runAsUser=0),
    "seccomp unset": lambda j: _pod(j)["securityContext"].pop("seccompProfile"),
    "seccomp Unconfined": lambda j: _sc(j).update(seccompProfile={"type": "Unconfined"}),
    "no drop ALL": lambda j: _sc(j).update(capabilities={"drop": ["NET_RAW"]}),
    "add SYS_ADMIN": lambda j: _sc(j)["capabilities"].update(add=["SYS_ADMIN"]),
    "add CHOWN (baseline only)": lambda j: _sc(j)["capabilities"].update(add=["CHOWN"]),
    "hostPath": lambda j: _pod(j)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "hostPort": lambda j: _ctr(j)["ports"][0].update(hostPort=9102),
    "procMount": lambda j: _sc(j).update(procMount="Unmasked"),
    "unsafe sysctl": lambda j: _pod(j)["securityContext"].update(
        sysctls=[{"name": "kernel.msgmax", "value": "1"}]
    ),
    "selinux user": lambda j: _sc(j).update(seLinuxOptions={"user": "root"}),
    "apparmor unconfined": lambda j: _sc(j).update(appArmorProfile={"type": "Unconfined"}),
    "init container": lambda j: _pod(j).update(initContainers=[{"name": "init", "image": "x"}]),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_the_checker_catches_each_rule(name: str) -> None:
    job = copy.deepcopy(manifests.run_job(body(), OperatorConfig(), subcommand="analyze"))
    assert restricted_violations(job) == []
    MUTATIONS[name](job)
    assert restricted_violations(job) != [], name
