"""Apply the chart's CRDs server-side: the chart's pre-upgrade hook Job.

    python -m rap_operator.crd_apply DIR [--field-manager NAME]

Helm installs a chart's crds/ folder on `helm install` and never again, so a
`helm upgrade` that brings new spec fields would leave the old schema and the
API server would prune those fields from every AnalysisRun. The hook Job runs
this on the CRD files the chart carries (a ConfigMap mounted at DIR): each is
server-side applied with its own field manager, forcing conflicts (the fields
were last written by Helm's create, by Argo CD or by `kubectl apply`), and the
Job succeeds once the API server reports every CRD Established.

Never deletes or replaces a CRD: deleting a CRD deletes every run. Only our
own CRDs are accepted (the hook's ClusterRole names them too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from analyzer_runtime.contract.types import API_GROUP

FIELD_MANAGER = "rap-analyzer-crds"
# The CRDs the chart ships; the hook's RBAC names exactly these.
OUR_CRDS = frozenset({f"analysisruns.{API_GROUP}", f"scrapejobs.{API_GROUP}"})
ESTABLISHED_TIMEOUT_S = 60.0

JSON = dict[str, Any]


class NotOurCRD(ValueError):
    """A document that is not one of this chart's CRDs."""


def parse_crds(texts: Iterable[str]) -> list[JSON]:
    """The CRDs in these YAML texts, in order, checked: apiextensions v1, ours only,
    each once. Pure (the unit tests call it)."""
    crds: list[JSON] = []
    seen: set[str] = set()
    for text in texts:
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            name = (doc.get("metadata") or {}).get("name")
            if (
                doc.get("apiVersion") != "apiextensions.k8s.io/v1"
                or doc.get("kind") != "CustomResourceDefinition"
            ):
                raise NotOurCRD(
                    f"{doc.get('apiVersion')}/{doc.get('kind')} {name}: not a CustomResourceDefinition"
                )
            if name not in OUR_CRDS:
                raise NotOurCRD(f"{name}: not one of this chart's CRDs {sorted(OUR_CRDS)}")
            if name in seen:
                raise NotOurCRD(f"{name}: given twice")
            seen.add(name)
            crds.append(doc)
    if not crds:
        raise NotOurCRD("no CRD found")
    return crds


def apply_body(crd: Mapping[str, Any]) -> JSON:
    """The apply configuration: the CRD as generated, minus what the server owns.

    A status or resourceVersion in an apply request would be refused or fought
    over; the generated files carry neither, but a CRD copied from a cluster
    (`kubectl get -o yaml`) would."""
    meta = {
        k: v
        for k, v in (crd.get("metadata") or {}).items()
        if k in ("name", "labels", "annotations")
    }
    return {
        "apiVersion": crd["apiVersion"],
        "kind": crd["kind"],
        "metadata": meta,
        "spec": crd["spec"],
    }


def established(crd: Mapping[str, Any]) -> bool:
    """Established and NamesAccepted, as `kubectl wait --for=condition=Established` reads it."""
    conditions = {
        c.get("type"): c.get("status") for c in (crd.get("status") or {}).get("conditions") or []
    }
    return conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True"


def read_dir(directory: Path) -> list[str]:
    """The YAML files of a directory, sorted by name. A mounted ConfigMap's keys are
    symlinks into a `..data` folder; the dot-entries are skipped."""
    return [
        p.read_text(encoding="utf-8")
        for p in sorted(directory.iterdir())
        if not p.name.startswith(".") and p.suffix in (".yaml", ".yml") and p.is_file()
    ]


async def apply_crds(
    api: Any, crds: list[JSON], field_manager: str = FIELD_MANAGER, log: Any = print
) -> list[str]:
    """Server-side apply each CRD, then wait until all are Established; their names."""
    from kubernetes_asyncio import client

    ext = client.ApiextensionsV1Api(api)
    names = []
    for crd in crds:
        name = crd["metadata"]["name"]
        # kubernetes_asyncio's .pyi stubs leave out `_content_type`, which every
        # generated method takes (it picks the patch type).
        await ext.patch_custom_resource_definition(  # type: ignore[call-arg]
            name,
            apply_body(crd),
            field_manager=field_manager,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        log(f"applied {name} (server-side, field manager {field_manager})")
        names.append(name)
    deadline = time.monotonic() + ESTABLISHED_TIMEOUT_S
    pending = list(names)
    while pending:
        current = await ext.read_custom_resource_definition(pending[0])
        if established(api.sanitize_for_serialization(current)):
            log(f"{pending.pop(0)} established")
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pending[0]} not Established after {ESTABLISHED_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.5)
    return names


async def _main(directory: Path, field_manager: str) -> None:
    from kubernetes_asyncio import client, config

    crds = parse_crds(read_dir(directory))
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        await config.load_kube_config()
    async with client.ApiClient() as api:
        await apply_crds(api, crds, field_manager)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rap_operator.crd_apply", description=__doc__)
    parser.add_argument("directory", type=Path, help="a folder of CRD YAML files")
    parser.add_argument("--field-manager", default=FIELD_MANAGER)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(args.directory, args.field_manager))
    except NotOurCRD as e:
        print(f"crd_apply: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
