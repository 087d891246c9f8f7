"""An image per role (issue 26): the operator image runs the operator and the hooks
that only talk to the Kubernetes API; the worker image (values `image`) runs
everything that imports the runtime: the Job pods (RAP_RUNTIME_IMAGE), the search
API, the ledger gc and the db-roles hook. operator.image's empty fields follow
`image`, so values written for the single image keep working."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from rap_devtools.helm import (
    find,
    operator_container,
    operator_env,
    pod_containers,
    render_chart,
)

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "charts" / "rap-analyzer" / "files"
WORKER = "ghcr.io/rap-analyzer/rap-analyzer:0.2.0"
OPERATOR = "ghcr.io/rap-analyzer/rap-analyzer-operator:0.2.0"
# Every pod template the chart can render with an image of ours.
EVERYTHING = {"search": {"enabled": True}, "crds": {"upgrade": True}}
JSON = dict[str, Any]


def _role(container: JSON) -> str | None:
    """Which image a container needs, from what it runs: `python -m analyzer_runtime`
    imports the runtime (worker); `python -m rap_operator[.x]` and the `python -c`
    hook scripts need only the operator's closure; Postgres and PgBouncer are
    neither."""
    command = [*container.get("command", []), *container.get("args", [])]
    if command[:2] == ["python", "-m"]:
        return "worker" if command[2].split(".")[0] == "analyzer_runtime" else "operator"
    if command[:2] == ["python", "-c"]:
        return "operator"
    return None


def test_each_container_runs_the_image_of_its_role() -> None:
    docs = render_chart(EVERYTHING)
    roles: dict[str, set[str]] = {"operator": set(), "worker": set()}
    for where, c in pod_containers(docs):
        role = _role(c)
        if role is not None:
            assert c["image"] == {"operator": OPERATOR, "worker": WORKER}[role], where
            roles[role].add(where)
    assert roles == {
        "operator": {
            "Deployment/rap-analyzer",
            "Job/rap-analyzer-crds",
            "Job/rap-analyzer-db-secret",
            "Job/rap-analyzer-search-token-hook",
        },
        "worker": {
            "Deployment/rap-analyzer-search",
            "CronJob/rap-analyzer-ledger-gc",
            "Job/rap-analyzer-db-roles",
            "Job/rap-analyzer-db-roles-upgrade",
        },
    }
    # The Job pods the operator creates, and the image the admission policy allows.
    assert operator_env(docs)["RAP_RUNTIME_IMAGE"] == WORKER


def test_the_hook_scripts_import_only_what_the_operator_image_has() -> None:
    """files/*.py run as `python -c` in the operator image: the standard library and
    kubernetes_asyncio (requirements/operator.in) are all they may import."""
    allowed = set(sys.stdlib_module_names) | {"kubernetes_asyncio"}
    scripts = sorted(FILES.glob("*.py"))
    assert [p.name for p in scripts] == ["db-secret.py", "search-token.py"]
    assert "kubernetes_asyncio" in (ROOT / "requirements" / "operator.in").read_text()
    for script in scripts:
        tops = set()
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops.add(node.module.split(".")[0])
        assert tops - allowed == set(), script.name


def test_values_for_the_single_image_get_the_operator_image_beside_it() -> None:
    """Only image.* set (a chart before 0.2.0): the operator runs <repository>-operator
    at the same tag and pull policy."""
    docs = render_chart(
        {"image": {"repository": "registry.local/rap", "tag": "7.1", "pullPolicy": "Always"}}
    )
    c = operator_container(docs)
    assert (c["image"], c["imagePullPolicy"]) == ("registry.local/rap-operator:7.1", "Always")
    env = operator_env(docs)
    assert (env["RAP_RUNTIME_IMAGE"], env["RAP_RUNTIME_IMAGE_PULL_POLICY"]) == (
        "registry.local/rap:7.1",
        "Always",
    )


def test_operator_image_values_override_each_field() -> None:
    docs = render_chart(
        {
            **EVERYTHING,
            "image": {"tag": "1.0"},
            "operator": {
                "image": {"repository": "mirror/op", "tag": "1.0-fix", "pullPolicy": "Never"}
            },
        }
    )
    for where, c in pod_containers(docs):
        if _role(c) == "operator":
            assert (c["image"], c["imagePullPolicy"]) == ("mirror/op:1.0-fix", "Never"), where
        elif _role(c) == "worker":
            assert (c["image"], c["imagePullPolicy"]) == (
                "ghcr.io/rap-analyzer/rap-analyzer:1.0",
                "IfNotPresent",
            ), where


def test_the_operator_may_run_from_the_worker_image() -> None:
    """The worker image still contains rap_operator: pointing operator.image at it
    gives the single image of 0.1.0."""
    docs = render_chart(
        {"operator": {"image": {"repository": "ghcr.io/rap-analyzer/rap-analyzer"}}}
    )
    assert operator_container(docs)["image"] == WORKER == operator_env(docs)["RAP_RUNTIME_IMAGE"]


@pytest.mark.parametrize("values", [{}, {"operator": {"image": {"tag": "other"}}}])
def test_the_admission_policy_allows_the_worker_image_only(values: JSON) -> None:
    """spec.image replaces the worker image of a run's pods; the operator's image is
    not one a run may name unless the admin lists it."""
    vap_api = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"
    (vap,) = find(render_chart(values, api_versions=[vap_api]), "ValidatingAdmissionPolicy")
    expr = next(v["expression"] for v in vap["spec"]["variables"] if v["name"] == "images")
    assert json.loads(expr) == [WORKER]  # a JSON list of strings is a CEL list literal
