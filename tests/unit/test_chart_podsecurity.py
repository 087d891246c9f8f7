"""Every pod the chart runs (operator Deployment, Postgres StatefulSet, the Postgres
secret hook Job, the ledger gc CronJob) meets the Pod Security Standard `restricted`, in every values mode.

`restricted_violations` is a checker of the profile's rules (baseline + restricted,
https://kubernetes.io/docs/concepts/security/pod-security-standards/), written from
the standard; tests/e2e/test_chart_podsecurity.py has a real kube-apiserver's
PodSecurity admission judge the same pod templates.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rap_devtools.helm import render_chart

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

JSON = dict[str, Any]

# kind -> where its pod template is.
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")

# Restricted: only these volume types.
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
# Baseline: the sysctls a pod may set.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_OK = frozenset({"RuntimeDefault", "Localhost"})


def pod_templates(docs: list[JSON]) -> list[tuple[str, JSON]]:
    """(`Kind/name`, pod template) of every workload in a render. A StatefulSet's
    volumeClaimTemplates become the persistentVolumeClaim volumes its pods get."""
    found: list[tuple[str, JSON]] = []
    for doc in docs:
        kind = doc.get("kind")
        if kind not in POD_TEMPLATE_KINDS:
            continue
        spec = doc["spec"]
        if kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        template = copy.deepcopy(spec["template"])
        for claim in spec.get("volumeClaimTemplates") or []:
            claim_name = f"{claim['metadata']['name']}-{doc['metadata']['name']}-0"
            template["spec"].setdefault("volumes", []).append(
                {
                    "name": claim["metadata"]["name"],
                    "persistentVolumeClaim": {"claimName": claim_name},
                }
            )
        found.append((f"{kind}/{doc['metadata']['name']}", template))
    return found


def _containers(pod: JSON) -> list[tuple[str, JSON]]:
    return [
        (f"{field}[{c.get('name')}]", c)
        for field in ("initContainers", "containers", "ephemeralContainers")
        for c in pod.get(field) or []
    ]


def restricted_violations(template: JSON) -> list[str]:
    """What in this pod template the `restricted` profile (which includes baseline)
    forbids; empty when it is allowed."""
    pod = template["spec"]
    psc = pod.get("securityContext") or {}
    out: list[str] = []
    containers = _containers(pod)
    if not containers:
        out.append("no containers")

    # --- baseline ---
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            out.append(f"{host}: true")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("pod windowsOptions.hostProcess")
    for v in pod.get("volumes") or []:
        types = set(v) - {"name"}
        if "hostPath" in types:
            out.append(f"volume {v['name']}: hostPath")
        # --- restricted: volume types ---
        if not types or not types <= RESTRICTED_VOLUME_TYPES:
            out.append(f"volume {v['name']}: type {sorted(types)} not allowed")
    for s in psc.get("sysctls") or []:
        if s.get("name") not in SAFE_SYSCTLS:
            out.append(f"sysctl {s.get('name')}")
    annotations = template.get("metadata", {}).get("annotations") or {}
    for key, value in annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            out.append(f"AppArmor annotation {key}={value}")

    def selinux(ctx: JSON, where: str) -> None:
        se = ctx.get("seLinuxOptions") or {}
        if se.get("type", "") not in SELINUX_TYPES:
            out.append(f"{where} seLinuxOptions.type {se.get('type')}")
        if se.get("user") or se.get("role"):
            out.append(f"{where} seLinuxOptions user/role")

    def apparmor(ctx: JSON, where: str) -> None:
        profile = ctx.get("appArmorProfile")
        if profile and profile.get("type") not in APPARMOR_OK:
            out.append(f"{where} appArmorProfile {profile.get('type')}")

    selinux(psc, "pod")
    apparmor(psc, "pod")

    # --- restricted: pod level ---
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_OK:
        out.append(f"pod seccompProfile {pod_seccomp}")
    if psc.get("runAsUser") == 0:
        out.append("pod runAsUser: 0")

    for where, c in containers:
        sc = c.get("securityContext") or {}
        # baseline
        if sc.get("privileged"):
            out.append(f"{where} privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"{where} windowsOptions.hostProcess")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{where} hostPort {port['hostPort']}")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"{where} procMount {sc['procMount']}")
        selinux(sc, where)
        apparmor(sc, where)
        # restricted
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where} allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where} capabilities.drop lacks ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            out.append(f"{where} capabilities.add {sorted(extra)}")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"{where} runAsNonRoot is not true (pod or container)")
        if sc.get("runAsUser") == 0:
            out.append(f"{where} runAsUser: 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in SECCOMP_OK:
            out.append(f"{where} seccompProfile {seccomp} (needs RuntimeDefault or Localhost)")
    return out


# --- the chart ----------------------------------------------------------------

VALUES = {
    "defaults": None,
    "postgres-password": {"postgres": {"auth": {"password": "pw"}}},
    "postgres-existing-secret": {"postgres": {"auth": {"existingSecret": "my-pg"}}},
    "external-url": {"database": {"url": "postgresql://u:p@h/db"}, "postgres": {"enabled": False}},
    "namespaced": {"rbac": {"clusterWide": False, "create": False}},
}


@pytest.mark.parametrize("name", VALUES)
def test_every_pod_template_is_restricted(name: str) -> None:
    templates = pod_templates(render_chart(VALUES[name]))
    assert templates
    for where, template in templates:
        assert restricted_violations(template) == [], where


def test_the_chart_has_the_four_pods() -> None:
    kinds = sorted(w.split("/")[0] for w, _ in pod_templates(render_chart()))
    # The Jobs: the Postgres secret hook, the two db-roles hooks (install, upgrade)
    # and the CRD upgrade hook.
    assert kinds == ["CronJob", "Deployment", "Job", "Job", "Job", "Job", "StatefulSet"]
    kinds = sorted(w.split("/")[0] for w, _ in pod_templates(render_chart(VALUES["external-url"])))
    assert kinds == ["CronJob", "Deployment", "Job"]
    off = render_chart({"ledgerGC": {"enabled": False}})
    assert sorted(w.split("/")[0] for w, _ in pod_templates(off)) == [
        "Deployment",
        "Job",
        "Job",
        "Job",
        "Job",
        "StatefulSet",
    ]


def _pods(docs: list[JSON]) -> dict[str, JSON]:
    return {where.split("/")[0]: t["spec"] for where, t in pod_templates(docs)}


def test_numeric_users_and_read_only_root_filesystems() -> None:
    pods = _pods(render_chart())
    uids = {
        "Deployment": 10001,
        "Job": 10001,
        "StatefulSet": 999,
        "CronJob": 10001,
    }  # the images' users
    for kind, pod in pods.items():
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert psc["runAsUser"] == psc["runAsGroup"] == psc["fsGroup"] == uids[kind], kind
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, kind
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            # The writable paths are emptyDirs (or the data PVC).
            volumes = {v["name"]: v for v in pod["volumes"]}
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], kind
    pg = pods["StatefulSet"]
    mounts = {m["mountPath"]: m["name"] for m in pg["containers"][0]["volumeMounts"]}
    assert "emptyDir" in {v["name"]: v for v in pg["volumes"]}[mounts["/var/run/postgresql"]]
    assert mounts["/var/lib/postgresql/data"] == "data"  # the PVC


def test_security_contexts_can_be_overridden() -> None:
    # OpenShift's restricted-v2 SCC assigns the uid: the ids can be unset, the
    # pods stay restricted (runAsNonRoot with the images' numeric USER).
    unset = {"runAsUser": None, "runAsGroup": None, "fsGroup": None}
    values = {
        "operator": {"podSecurityContext": unset, "securityContext": {"runAsUser": None}},
        "ledgerGC": {"podSecurityContext": unset, "securityContext": {"runAsUser": None}},
        "postgres": {
            "podSecurityContext": unset,
            "secretJob": {"podSecurityContext": unset, "securityContext": {"runAsUser": None}},
        },
    }
    docs = render_chart(values)
    for where, template in pod_templates(docs):
        assert restricted_violations(template) == [], where
        pod = template["spec"]
        assert "runAsUser" not in pod["securityContext"], where
        assert "runAsUser" not in pod["containers"][0]["securityContext"], where
    docs = render_chart({"postgres": {"podSecurityContext": {"runAsUser": 70, "fsGroup": 70}}})
    psc = _pods(docs)["StatefulSet"]["securityContext"]
    assert (psc["runAsUser"], psc["fsGroup"], psc["runAsGroup"]) == (70, 70, 999)


# --- the checker catches what it should ---------------------------------------


def _operator_template() -> JSON:
    return next(t for w, t in pod_templates(render_chart()) if w.startswith("Deployment/"))


def _break(mutate: Any) -> list[str]:
    template = _operator_template()
    mutate(template["spec"], template["spec"]["containers"][0])
    return restricted_violations(template)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p, c: p["securityContext"].pop("seccompProfile"), "seccompProfile None"),
        (
            lambda p, c: p["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            "seccompProfile Unconfined",
        ),
        (
            lambda p, c: (p["securityContext"].pop("runAsNonRoot"), c["securityContext"].clear()),
            "runAsNonRoot",
        ),
        (lambda p, c: c["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
        (lambda p, c: p["securityContext"].update(runAsUser=0), "runAsUser: 0"),
        (lambda p, c: c["securityContext"].pop("allowPrivilegeEscalation"), "allowPrivilege"),
        (lambda p, c: c["securityContext"].update(capabilities={}), "lacks ALL"),
        (
            lambda p, c: c["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
            "capabilities.add",
        ),
        (lambda p, c: c["securityContext"].update(privileged=True), "privileged"),
        (lambda p, c: p.update(hostNetwork=True), "hostNetwork"),
        (lambda p, c: p.update(hostPID=True), "hostPID"),
        (
            lambda p, c: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
            "hostPath",
        ),
        (
            lambda p, c: p["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}),
            "type ['nfs']",
        ),
        (lambda p, c: c["ports"].append({"containerPort": 80, "hostPort": 80}), "hostPort"),
        (
            lambda p, c: p["securityContext"].update(
                sysctls=[{"name": "kernel.msgmax", "value": "1"}]
            ),
            "sysctl",
        ),
    ],
)
def test_the_checker_refuses(mutate: Any, expected: str) -> None:
    assert restricted_violations(_operator_template()) == []
    found = _break(mutate)
    assert any(expected in v for v in found), found
