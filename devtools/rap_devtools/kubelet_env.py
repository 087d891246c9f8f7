"""Container environment and command resolution, the way the kubelet does it.

Order (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables): ``envFrom``
sources in order, then ``env`` entries in order, later ones winning; each
``env`` value may reference earlier variables as ``$(NAME)``; command and
args are expanded against the final environment.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from rap_devtools.kubeapi import ApiError, KubeApi

JSON = dict[str, Any]
HOST_IP = "127.0.0.1"
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class EnvError(Exception):
    """The container cannot start yet (missing Secret/ConfigMap/key).

    The real kubelet reports ``CreateContainerConfigError`` and retries, so
    creating the Secret a moment later still lets the pod run.
    """


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown names stay verbatim, ``$$`` is ``$``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def field_value(pod: JSON, path: str) -> str:
    """The value of a downward-API ``fieldRef.fieldPath``."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    m = _SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple: dict[str, Callable[[], str]] = {
        "metadata.name": lambda: meta["name"],
        "metadata.namespace": lambda: meta["namespace"],
        "metadata.uid": lambda: meta["uid"],
        "spec.nodeName": lambda: spec.get("nodeName", ""),
        "spec.serviceAccountName": lambda: spec.get("serviceAccountName", ""),
        # Every pod runs on the host network of this one machine.
        "status.hostIP": lambda: status.get("hostIP") or HOST_IP,
        "status.hostIPs": lambda: status.get("hostIP") or HOST_IP,
        "status.podIP": lambda: status.get("podIP") or HOST_IP,
        "status.podIPs": lambda: status.get("podIP") or HOST_IP,
    }
    if path in simple:
        return simple[path]()
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(container: JSON, ref: JSON, node_alloc: Mapping[str, str]) -> str:
    """``resourceFieldRef``: a limit/request, defaulting to node allocatable."""
    resource = ref["resource"]
    kind, _, name = resource.partition(".")
    section = (container.get("resources") or {}).get(kind) or {}
    raw = section.get(name)
    if raw is None and kind == "requests":
        raw = ((container.get("resources") or {}).get("limits") or {}).get(name)
    value = parse_quantity(raw if raw is not None else node_alloc.get(name, "0"))
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor == 0:
        divisor = Decimal(1)
    # The kubelet rounds up: 500m cpu with divisor 1 is "1".
    return str(math.ceil(value / divisor))


class EnvResolver:
    """Resolves one container's env against the API (Secrets, ConfigMaps)."""

    def __init__(self, api: KubeApi, node_alloc: Mapping[str, str]) -> None:
        self.api = api
        self.node_alloc = node_alloc

    def _object_data(self, kind: str, ns: str, name: str, optional: bool) -> dict[str, str] | None:
        plural = "secrets" if kind == "Secret" else "configmaps"
        try:
            obj = self.api.get(f"/api/v1/namespaces/{ns}/{plural}/{name}")
        except ApiError as e:
            if e.status == 404:
                if optional:
                    return None
                raise EnvError(f'{kind.lower()} "{name}" not found') from e
            raise
        if kind == "Secret":
            return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        data = dict(obj.get("data") or {})
        data.update(
            {k: base64.b64decode(v).decode() for k, v in (obj.get("binaryData") or {}).items()}
        )
        return data

    def _key_ref(self, kind: str, ns: str, ref: JSON) -> str | None:
        optional = bool(ref.get("optional"))
        data = self._object_data(kind, ns, ref["name"], optional)
        if data is None:
            return None
        if ref["key"] not in data:
            if optional:
                return None
            raise EnvError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")
        return data[ref["key"]]

    def resolve(self, pod: JSON, container: JSON, base: Mapping[str, str]) -> dict[str, str]:
        """Environment for ``container``: ``base`` (the "image" env) + pod env."""
        ns = pod["metadata"]["namespace"]
        env: dict[str, str] = dict(base)
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                ref = source.get(key)
                if ref is None:
                    continue
                data = self._object_data(kind, ns, ref["name"], bool(ref.get("optional")))
                for k, v in (data or {}).items():
                    env[prefix + k] = v
        for var in container.get("env") or []:
            name = var["name"]
            if "valueFrom" not in var:
                env[name] = expand(var.get("value", ""), env)
                continue
            src = var["valueFrom"]
            value: str | None
            if "fieldRef" in src:
                value = field_value(pod, src["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in src:
                value = resource_value(container, src["resourceFieldRef"], self.node_alloc)
            elif "secretKeyRef" in src:
                value = self._key_ref("Secret", ns, src["secretKeyRef"])
            elif "configMapKeyRef" in src:
                value = self._key_ref("ConfigMap", ns, src["configMapKeyRef"])
            else:
                raise EnvError(f"unsupported valueFrom for {name}: {sorted(src)}")
            if value is not None:
                env[name] = value
        return env


def command_line(container: JSON, env: Mapping[str, str]) -> list[str]:
    """argv from command + args; without ``command`` the args are the argv
    (there is no image entrypoint to fall back on)."""
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if not argv:
        raise EnvError("container has neither command nor args (images are not run here)")
    return [expand(a, env) for a in argv]


def base_environment(pod_name: str, path_first: str) -> dict[str, str]:
    """What the "image" would provide: a PATH (the venv's bin first, so
    ``python -m ...`` runs the project's interpreter), HOME, locale, and
    HOSTNAME like a container gets."""
    path = os.pathsep.join([path_first, os.environ.get("PATH", "/usr/bin:/bin")])
    env = {"PATH": path, "HOSTNAME": pod_name, "PYTHONUNBUFFERED": "1"}
    for name in ("HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env
