"""charts/rap-analyzer: the search API's token hook (templates/search-token-job.yaml,
files/search-token.py), rendered. Its script against a real API server:
tests/e2e/test_chart_search_token.py."""

from __future__ import annotations

from typing import Any

import pytest
from rap_devtools.helm import CHART, find, only, render_chart

from tests.unit.test_chart_podsecurity import pod_templates, restricted_violations

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

JSON = dict[str, Any]
ON = {"search": {"enabled": True}}
HOOK = "rap-analyzer-search-token-hook"


def _hook_docs(docs: list[JSON]) -> list[JSON]:
    return [
        d
        for d in docs
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "search-token"
    ]


def _env(job: JSON) -> dict[str, str]:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in c["env"]}


@pytest.mark.parametrize(
    "values",
    [
        None,
        {"search": {"enabled": False, "auth": {"enabled": True}}},
        {"search": {"enabled": True, "auth": {"enabled": False}}},
        {"search": {"enabled": True, "auth": {"existingSecret": "team-token"}}},
    ],
    ids=["defaults", "search-off", "auth-off", "existing-secret"],
)
def test_rendered_only_when_the_chart_reads_its_own_token_secret(values: JSON | None) -> None:
    assert _hook_docs(render_chart(values)) == []


def test_the_hook_objects_and_their_order() -> None:
    docs = _hook_docs(render_chart(ON))
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("Job", HOOK), ("Role", HOOK), ("RoleBinding", HOOK), ("ServiceAccount", HOOK),
    ]  # fmt: skip
    weights = {}
    for d in docs:
        ann = d["metadata"]["annotations"]
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        weights[d["kind"]] = int(ann["helm.sh/hook-weight"])
    # The RBAC exists before the Job runs (Helm and Argo CD apply hooks by weight).
    assert weights["ServiceAccount"] < weights["Role"] < weights["RoleBinding"] < weights["Job"]
    binding = only(docs, "RoleBinding")
    assert binding["roleRef"]["name"] == HOOK
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": HOOK, "namespace": "rap"}]


def test_the_job_runs_the_script_for_the_secret_the_deployment_reads() -> None:
    docs = render_chart(ON)
    job = only(docs, "Job", HOOK)
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["serviceAccountName"] == HOOK and pod["restartPolicy"] == "Never"
    assert c["command"] == ["python", "-c"]
    assert c["args"] == [(CHART / "files" / "search-token.py").read_text()]
    operator = only(docs, "Deployment", "rap-analyzer")["spec"]["template"]["spec"]
    assert c["image"] == operator["containers"][0]["image"]
    env = _env(job)
    search = only(docs, "Deployment", "rap-analyzer-search")["spec"]["template"]["spec"]
    (ref,) = [
        e["valueFrom"]["secretKeyRef"]
        for e in search["containers"][0]["env"]
        if e["name"] == "RAP_SEARCH_TOKEN"
    ]
    assert (env["TOKEN_SECRET"], env["TOKEN_KEY"]) == (ref["name"], ref["key"])
    assert ref == {"name": "rap-analyzer-search-token", "key": "token"}
    assert env["NAMESPACE"] == "rap"
    assert '"helm.sh/resource-policy":"keep"' in env["SECRET_ANNOTATIONS"]
    # Argo CD's tracking label would have the Secret pruned (it is not rendered).
    assert "app.kubernetes.io/instance" not in env["SECRET_LABELS"]
    assert '"app.kubernetes.io/part-of":"rap-analyzer"' in env["SECRET_LABELS"]


def test_the_key_follows_existing_secret_key() -> None:
    values = {"search": {"enabled": True, "auth": {"existingSecretKey": "bearer"}}}
    assert _env(only(render_chart(values), "Job", HOOK))["TOKEN_KEY"] == "bearer"


def test_the_role_may_create_secrets_and_get_only_the_token_secret() -> None:
    role = only(render_chart(ON), "Role", HOOK)
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["rap-analyzer-search-token"],
            "verbs": ["get"],
        },
    ]


def test_without_rbac_create_only_the_service_account() -> None:
    docs = _hook_docs(render_chart({**ON, "rbac": {"create": False}}))
    assert sorted(d["kind"] for d in docs) == ["Job", "ServiceAccount"]


def test_the_hook_pod_is_restricted() -> None:
    templates = [(where, t) for where, t in pod_templates(render_chart(ON)) if where.endswith(HOOK)]
    assert len(templates) == 1
    for where, template in templates:
        assert restricted_violations(template) == [], where
    pod = templates[0][1]["spec"]
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_renders_are_identical_and_carry_no_token() -> None:
    first, second = render_chart(ON), render_chart(ON)
    assert first == second
    # The Secret itself is never rendered: the hook creates it in the cluster.
    assert find(first, "Secret", "rap-analyzer-search-token") == []
