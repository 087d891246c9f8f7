"""Kubernetes API calls the operator makes besides kopf's own (Jobs, Secrets, a
ScrapeJob's ConfigMap and the AnalysisRun it chains)."""

from __future__ import annotations

import base64
import os
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

_api: client.ApiClient | None = None


class SecretProblem(Exception):
    """A referenced Secret or key is missing; the message names it, never its value."""


async def _load_config() -> None:
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        await config.load_kube_config()


async def api() -> client.ApiClient:
    global _api
    if _api is None:
        await _load_config()
        _api = client.ApiClient()
    return _api


async def new_client() -> client.ApiClient:
    """A client of the caller's own, for the leader election: it outlives kopf, whose
    cleanup handler closes the shared one."""
    await _load_config()
    return client.ApiClient()


async def close() -> None:
    global _api
    if _api is not None:
        await _api.close()
        _api = None


def _plain(obj: Any) -> dict[str, Any]:
    assert _api is not None
    data: dict[str, Any] = _api.sanitize_for_serialization(obj)
    return data


async def create_job(job: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the Job, or return the existing one (a restarted operator must not make a second)."""
    batch = client.BatchV1Api(await api())
    ns = job["metadata"]["namespace"]
    try:
        # kubernetes_asyncio's stubs want a V1Job; its client serializes a plain dict
        # the same way (sanitize_for_serialization).
        return _plain(await batch.create_namespaced_job(ns, job)), True  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status != 409:
            raise
    existing = await read_job(ns, job["metadata"]["name"])
    assert existing is not None
    return existing, False


async def read_job(namespace: str, name: str) -> dict[str, Any] | None:
    batch = client.BatchV1Api(await api())
    try:
        return _plain(await batch.read_namespaced_job(name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def patch_job(namespace: str, name: str, patch: dict[str, Any]) -> None:
    batch = client.BatchV1Api(await api())
    await batch.patch_namespaced_job(name, namespace, patch)


async def delete_job(namespace: str, name: str) -> None:
    batch = client.BatchV1Api(await api())
    try:
        await batch.delete_namespaced_job(
            name, namespace, body=client.V1DeleteOptions(propagation_policy="Background")
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


async def events_for(namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    """Events about one object, newest last."""
    core = client.CoreV1Api(await api())
    got = await core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}"
    )
    events = [_plain(e) for e in got.items]
    return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


async def pods_of_run(namespace: str, uid: str) -> list[dict[str, Any]]:
    from analyzer_runtime.contract.labels import LABEL_RUN_UID

    core = client.CoreV1Api(await api())
    got = await core.list_namespaced_pod(namespace, label_selector=f"{LABEL_RUN_UID}={uid}")
    return [_plain(p) for p in got.items]


async def patch_status(plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patch a run's status subresource (None values remove fields)."""
    custom = client.CustomObjectsApi(await api())
    # kubernetes_asyncio's .pyi stubs leave out `_content_type`, which every generated
    # method takes (it picks the patch type).
    await custom.patch_namespaced_custom_object_status(  # type: ignore[call-arg]
        "rapanalyzer.io", "v1alpha1", namespace, plural, name, {"status": status},
        _content_type="application/merge-patch+json",
    )  # fmt: skip


async def read_run(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    """A rapanalyzer.io object as the API server has it now (a quorum read), or None
    when there is none of that name (404)."""
    custom = client.CustomObjectsApi(await api())
    try:
        obj: dict[str, Any] = await custom.get_namespaced_custom_object(
            "rapanalyzer.io", "v1alpha1", namespace, plural, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return obj


async def annotate(plural: str, body: dict[str, Any], annotations: dict[str, str]) -> None:
    custom = client.CustomObjectsApi(await api())
    meta = body["metadata"]
    # kubernetes_asyncio's .pyi stubs leave out `_content_type`, which every generated
    # method takes (it picks the patch type).
    await custom.patch_namespaced_custom_object(  # type: ignore[call-arg]
        "rapanalyzer.io", "v1alpha1", meta["namespace"], plural, meta["name"],
        {"metadata": {"annotations": annotations}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip


async def patch_workload(workload: dict[str, Any], patch: dict[str, Any]) -> None:
    """Merge-patch a Kueue Workload, at the API version it was read in (Kueue serves
    v1beta1 and v1beta2 depending on its release)."""
    custom = client.CustomObjectsApi(await api())
    group, _, version = workload["apiVersion"].partition("/")
    meta = workload["metadata"]
    # kubernetes_asyncio's .pyi stubs leave out `_content_type`, which every generated
    # method takes (it picks the patch type).
    await custom.patch_namespaced_custom_object(  # type: ignore[call-arg]
        group, version, meta["namespace"], "workloads", meta["name"], patch,
        _content_type="application/merge-patch+json",
    )  # fmt: skip


async def remove_finalizer(plural: str, body: dict[str, Any], finalizer: str) -> None:
    """Drop a finalizer an older operator version left (JSON patch, guarded by a test)."""
    meta = body["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if finalizer not in finalizers:
        return
    custom = client.CustomObjectsApi(await api())
    i = finalizers.index(finalizer)
    await custom.patch_namespaced_custom_object(
        "rapanalyzer.io", "v1alpha1", meta["namespace"], plural, meta["name"],
        [{"op": "test", "path": f"/metadata/finalizers/{i}", "value": finalizer},
         {"op": "remove", "path": f"/metadata/finalizers/{i}"}],
    )  # fmt: skip


async def _key_of(kind: str, read: Any, namespace: str, name: str, key: str) -> Any:
    """One key of a Secret's or ConfigMap's data. Missing objects and keys raise
    SecretProblem naming them (the Valid=False message), never the values."""
    try:
        obj = await read(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise SecretProblem(f"{kind} {namespace}/{name} does not exist") from None
        if exc.status == 403:
            raise SecretProblem(f"the operator may not read {kind} {namespace}/{name}") from None
        raise
    data = obj.data or {}
    if key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise SecretProblem(f"{kind} {namespace}/{name} has no key {key!r} (keys: {keys})")
    return data[key]


async def secret_value(namespace: str, name: str, key: str) -> str:
    core = client.CoreV1Api(await api())
    value = await _key_of("Secret", core.read_namespaced_secret, namespace, name, key)
    return base64.b64decode(value).decode()


async def secret_labels(namespace: str, name: str) -> dict[str, str] | None:
    """A Secret's labels (None: it does not exist). Only metadata is looked at; the
    policy never needs a value."""
    core = client.CoreV1Api(await api())
    try:
        obj = await core.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status == 403:
            raise SecretProblem(f"the operator may not read Secret {namespace}/{name}") from None
        raise
    return dict(obj.metadata.labels or {})


async def configmap_value(namespace: str, name: str, key: str) -> str:
    """A ConfigMap key's text (a ScrapeJob's artist list)."""
    core = client.CoreV1Api(await api())
    return str(await _key_of("ConfigMap", core.read_namespaced_config_map, namespace, name, key))


async def create_custom_object(plural: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create a rapanalyzer.io object (a chained AnalysisRun), or return the existing
    one of that name: a refresh repeated after a crash must not fail on it."""
    custom = client.CustomObjectsApi(await api())
    group, version = body["apiVersion"].split("/")
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        return await custom.create_namespaced_custom_object(group, version, ns, plural, body), True
    except ApiException as exc:
        if exc.status != 409:
            raise
    existing = await custom.get_namespaced_custom_object(group, version, ns, plural, name)
    return existing, False
