"""Render and lint charts/rap-analyzer with bin/helm (built by `make helm`).

    from rap_devtools.helm import render_chart, rbac_rules

    docs = render_chart({"rbac": {"clusterWide": False}, "watchNamespaces": ["a"]})
    rules = rbac_rules(docs)      # what the operator may do, exactly

The e2e tests use `render_chart` + `rbac_documents`/`rbac_rules` to run the
operator with exactly the RBAC the chart grants.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "rap-analyzer"
HELM = ROOT / "bin" / "helm"

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


class HelmError(RuntimeError):
    """helm exited non-zero; the message holds its stderr."""


def helm_bin() -> Path:
    """bin/helm, or FileNotFoundError telling how to build it."""
    if not (HELM.is_file() and HELM.stat().st_mode & 0o111):
        raise FileNotFoundError(
            f"{HELM} is missing: run `make helm` (builds it from tools/helm, cached per user)"
        )
    return HELM


def _helm(args: list[str], values: dict[str, Any] | None) -> str:
    with tempfile.TemporaryDirectory(prefix="rap-helm-") as tmp:
        cmd = [str(helm_bin()), *args]
        if values:
            path = Path(tmp) / "values.yaml"
            path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
            cmd += ["--values", str(path)]
        # A private HOME-independent helm state: never read the user's repos/plugins.
        env = {
            "PATH": "/usr/bin:/bin",
            "HELM_CACHE_HOME": f"{tmp}/cache",
            "HELM_CONFIG_HOME": f"{tmp}/config",
            "HELM_DATA_HOME": f"{tmp}/data",
            "KUBECONFIG": f"{tmp}/no-kubeconfig",
        }
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise HelmError(f"{' '.join(cmd[:2])} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def render_chart(
    values: dict[str, Any] | None = None,
    namespace: str = "rap",
    release: str = "rap-analyzer",
    *,
    include_crds: bool = False,
    api_versions: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """`helm template` the chart with these values; the parsed documents, in helm's order.

    `helm template` talks to no cluster, and the chart needs none: the output is the
    same on every call (the in-cluster Postgres password comes from a hook Job).
    """
    args = ["template", release, str(CHART), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    for v in api_versions:  # what a live cluster's discovery would tell helm
        args += ["--api-versions", v]
    out = _helm(args, values)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def lint_chart(values: dict[str, Any] | None = None, *, strict: bool = True) -> str:
    """`helm lint [--strict]`; its output, or HelmError."""
    args = ["lint", str(CHART)]
    if strict:
        args.append("--strict")
    return _helm(args, values)


def find(
    docs: Iterable[dict[str, Any]], kind: str, name: str | None = None
) -> list[dict[str, Any]]:
    """The documents of this kind (and name)."""
    return [
        d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    ]


def only(docs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one document of this kind (and name); AssertionError otherwise."""
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def operator_deployment(docs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The operator's Deployment (component=operator)."""
    deps = [
        d
        for d in find(docs, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "operator"
    ]
    assert len(deps) == 1, f"expected one operator Deployment, got {len(deps)}"
    return deps[0]


def operator_container(docs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    containers = operator_deployment(docs)["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "operator")


def operator_env(docs: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The operator container's literal env (name -> value)."""
    return {e["name"]: e.get("value", "") for e in operator_container(docs).get("env", [])}


def pod_containers(docs: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, container) for every container and init container of every pod
    template in a render, wherever the kind nests it (Deployment, Job, CronJob, hook)."""

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    yield from value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for doc in docs:
        for c in walk(doc):
            yield f"{doc['kind']}/{doc['metadata']['name']}", c


def _is_hook(doc: dict[str, Any]) -> bool:
    return "helm.sh/hook" in ((doc.get("metadata") or {}).get("annotations") or {})


def rbac_documents(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's ServiceAccount, ClusterRole(s), Role(s) and their bindings, ready
    to apply (a hook's own RBAC is not the operator's)."""
    return [d for d in docs if d.get("kind") in RBAC_KINDS and not _is_hook(d)]


def rbac_rules(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules of the operator's ClusterRole(s)/Role(s), deduplicated, in chart order.

    With rbac.clusterWide=true that is the one ClusterRole; with false, the
    Role (identical in every watched namespace) plus the small ClusterRole of
    kopf's cluster-scoped reads.
    """
    rules: list[dict[str, Any]] = []
    for doc in docs:
        if doc.get("kind") not in ("ClusterRole", "Role") or _is_hook(doc):
            continue
        for rule in doc.get("rules") or []:
            if rule not in rules:
                rules.append(rule)
    return rules


def rule_triples(rules: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Rules flattened to (apiGroup, resource, verb), e.g. ("batch", "jobs", "create")."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }
