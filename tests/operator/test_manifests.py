"""The operator's pure parts: Job manifests, validation, config, refused spec changes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rap_operator import manifests
from rap_operator.config import OperatorConfig
from rap_operator.kinds import ANALYSIS
from rap_operator.validation import InvalidRun, check_spec

from analyzer_runtime.contract.models import MUTABLE_AFTER_PLANNING
from analyzer_runtime.contract.scrape_models import SCRAPE_MUTABLE_AFTER_PLANNING

UID = "0b6c1c6e-4a8e-4a7e-9d43-2f1e7f0e9a11"
_refused_changes = ANALYSIS.refused_changes


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": "demo",
            "namespace": "rap",
            "uid": UID,
            "generation": 1,
            "resourceVersion": "123",  # server-added fields must not upset validation
            "creationTimestamp": "2026-11-21T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"analyzer": "algorithmic", "shards": 4, "parallelism": 2, **spec},
    }


def test_job_is_an_indexed_job_owned_by_the_run() -> None:
    cfg = OperatorConfig(
        image="img:1", runtime_command=["python", "-m", "analyzer_runtime", "analyze"]
    )
    job = manifests.kind_job(
        body(retry={"backoffLimitPerIndex": 2}, ttlSecondsAfterFinished=600), cfg, ANALYSIS
    )
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (4, 2, 2)
    # The TTL is set only once the final phase is recorded (job_patch_after_finish).
    assert "ttlSecondsAfterFinished" not in spec and spec["suspend"] is False
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["image"] == "img:1"
    assert c["command"] == ["python", "-m", "analyzer_runtime", "analyze", "--run-id", UID]
    db = next(e for e in c["env"] if e["name"] == "DATABASE_URL")
    assert db["valueFrom"]["secretKeyRef"] == {"name": "rap-analyzer-db", "key": "url"}
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner["uid"] == UID and owner["controller"] and owner["kind"] == "AnalysisRun"
    assert job["metadata"]["labels"][manifests.LABEL_RUN_UID] == UID
    assert spec["template"]["metadata"]["labels"] == job["metadata"]["labels"]
    assert "annotations" not in spec["template"]["metadata"]


def test_spec_overrides_reach_the_job() -> None:
    b = body(
        database={"secretRef": {"name": "mydb", "key": "dsn"}},
        image="other:2",
        suspend=True,
        resources={"limits": {"memory": "512Mi", "cpu": 1}},
    )
    job = manifests.kind_job(b, OperatorConfig(), ANALYSIS)
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "other:2"
    assert c["resources"] == {"limits": {"memory": "512Mi", "cpu": "1"}}
    db = next(e for e in c["env"] if e["name"] == "DATABASE_URL")
    assert db["valueFrom"]["secretKeyRef"] == {"name": "mydb", "key": "dsn"}
    assert job["spec"]["suspend"] is True
    assert manifests.job_patch_for_spec(b["spec"]) == {
        "spec": {"suspend": True, "parallelism": 2, "activeDeadlineSeconds": None}
    }


def test_job_name_fits_a_label_and_is_stable() -> None:
    long = "x" * 253
    name = manifests.job_name(long, UID)
    assert len(name) <= 63 and name == manifests.job_name(long, UID)
    assert manifests.job_name("demo", UID) != manifests.job_name("demo", UID.replace("0", "1"))


def test_check_spec_accepts_a_server_object() -> None:
    m = check_spec(body())
    assert m.spec.shards == 4 and m.metadata.uid == UID


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ({"parallelism": 8}, "spec.parallelism: must be <= spec.shards (4), got 8"),
        ({"analyzer": "nope"}, "unknown analyzer 'nope'"),
        ({"batchSize": 0}, "spec.batchSize"),
    ],
)
def test_check_spec_refuses_with_a_message(spec: dict[str, Any], expect: str) -> None:
    with pytest.raises(InvalidRun) as err:
        check_spec(body(**spec))
    assert expect in str(err.value)
    assert "Traceback" not in str(err.value)


def test_refused_changes_name_the_field() -> None:
    planned = body()["spec"]
    same = copy.deepcopy(planned) | {"suspend": True, "parallelism": 1}
    assert _refused_changes(planned, same) is None
    msg = _refused_changes(planned, planned | {"shards": 8, "parallelism": 2})
    assert msg and "shards" in msg and "new AnalysisRun" in msg


def test_config_from_env() -> None:
    cfg = OperatorConfig.from_env(
        {
            "RAP_NAMESPACES": "a, b",
            "RAP_RUNTIME_IMAGE": "img:9",
            "RAP_STATUS_INTERVAL": "1.5",
            "RAP_RUNTIME_COMMAND": "x,-m,y",
        }
    )
    assert cfg.namespaces == ["a", "b"] and cfg.image == "img:9"
    assert cfg.status_interval == 1.5 and cfg.runtime_command == ["x", "-m", "y"]
    assert OperatorConfig.from_env({}).namespaces == []


def test_config_pod_run_as_user() -> None:
    assert OperatorConfig().pod_run_as_user == 10001
    assert OperatorConfig.from_env({}).pod_run_as_user == 10001
    assert OperatorConfig.from_env({"RAP_POD_RUN_AS_USER": "2000"}).pod_run_as_user == 2000
    # Empty: the platform assigns the uid (OpenShift's restricted SCC refuses others).
    assert OperatorConfig.from_env({"RAP_POD_RUN_AS_USER": ""}).pod_run_as_user is None
    for bad in ("0", "root", "-5"):
        with pytest.raises(ValueError, match="RAP_POD_RUN_AS_USER must be a non-zero"):
            OperatorConfig.from_env({"RAP_POD_RUN_AS_USER": bad})


def test_pods_run_as_the_configured_user_without_a_token_with_a_writable_tmp() -> None:
    job = manifests.kind_job(body(), OperatorConfig(pod_run_as_user=4242), ANALYSIS)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 4242, "runAsGroup": 4242, "fsGroup": 4242,
        "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert {"name": "HOME", "value": "/tmp"} in c["env"]
    unset = manifests.kind_job(body(), OperatorConfig(pod_run_as_user=None), ANALYSIS)
    ctx = unset["spec"]["template"]["spec"]["securityContext"]
    assert ctx == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


POD_TEMPLATE = {
    "labels": {"team": "data", "app.kubernetes.io/name": "mine"},
    "annotations": {"example.com/cost-center": "42"},
    "nodeSelector": {"kubernetes.io/arch": "amd64", "pool": "batch"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
        {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ],
    "priorityClassName": "low",
    "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
}


def test_pod_template_reaches_the_pods_under_the_operators_labels() -> None:
    job = manifests.kind_job(body(podTemplate=POD_TEMPLATE), OperatorConfig(), ANALYSIS)
    tpl = job["spec"]["template"]
    own = manifests.labels("AnalysisRun", "demo", UID)
    assert tpl["metadata"]["labels"] == {"team": "data", **own}
    assert tpl["metadata"]["labels"]["app.kubernetes.io/name"] == "rap-analyzer"  # ours win
    assert job["metadata"]["labels"] == own  # the Job itself carries only ours
    assert tpl["metadata"]["annotations"] == {"example.com/cost-center": "42"}
    pod = tpl["spec"]
    assert pod["nodeSelector"] == POD_TEMPLATE["nodeSelector"]
    assert pod["tolerations"] == POD_TEMPLATE["tolerations"]
    assert pod["priorityClassName"] == "low"
    (c,) = pod["containers"]
    assert c["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    # The manifest is built from the resource as the API server stores it: the models
    # accept the same template.
    assert check_spec(body(podTemplate=POD_TEMPLATE)).spec.pod_template is not None


def test_pod_template_is_fixed_at_planning() -> None:
    planned = body(podTemplate=POD_TEMPLATE)["spec"]
    changed = copy.deepcopy(planned)
    changed["podTemplate"]["labels"]["team"] = "other"
    msg = _refused_changes(planned, changed)
    assert msg and "podTemplate" in msg


def test_no_ttl_on_the_job_until_the_run_has_finished() -> None:
    spec = body(ttlSecondsAfterFinished=0)["spec"]
    job = manifests.kind_job(body(ttlSecondsAfterFinished=0), OperatorConfig(), ANALYSIS)
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert manifests.job_patch_after_finish(spec) == {"spec": {"ttlSecondsAfterFinished": 0}}
    assert manifests.job_patch_after_finish(body()["spec"]) is None


def test_active_deadline_follows_the_spec() -> None:
    job = manifests.kind_job(body(activeDeadlineSeconds=3600), OperatorConfig(), ANALYSIS)
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    patch = manifests.job_patch_for_spec(body(activeDeadlineSeconds=7200)["spec"])
    assert patch["spec"]["activeDeadlineSeconds"] == 7200
    # Taken out of the spec: null removes it from the Job (a merge patch).
    assert manifests.job_patch_for_spec(body()["spec"])["spec"]["activeDeadlineSeconds"] is None


@pytest.mark.parametrize("mutable", [MUTABLE_AFTER_PLANNING, SCRAPE_MUTABLE_AFTER_PLANNING])
def test_every_field_changeable_after_planning_reaches_the_job(mutable: frozenset[str]) -> None:
    values = {"suspend": True, "parallelism": 3, "ttlSecondsAfterFinished": 60,
              "activeDeadlineSeconds": 600}  # fmt: skip
    assert set(values) >= mutable, f"give {sorted(mutable - set(values))} a value here"
    spec = body(**{k: values[k] for k in mutable})["spec"]
    reached = {
        **manifests.job_patch_for_spec(spec)["spec"],
        **(manifests.job_patch_after_finish(spec) or {}).get("spec", {}),
    }
    for field in mutable:
        assert reached.get(field) == values[field], field


def test_the_stop_grace_and_pool_mode_reach_the_shard_pods_when_the_chart_sets_them() -> None:
    # manifests.py is pure: what the chart set comes in through OperatorConfig.from_env.
    def env_of(environ: dict[str, str]) -> dict[str, Any]:
        config = OperatorConfig.from_env({"RAP_RUNTIME_IMAGE": "img:1", **environ})
        job = manifests.kind_job(body(), config, ANALYSIS)
        return {
            e["name"]: e.get("value")
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        }

    unset = env_of({})
    assert "RAP_STOP_GRACE_SECONDS" not in unset  # the runtime's default (3 s)
    assert "DATABASE_POOL_MODE" not in unset  # session, the default
    got = env_of({"RAP_STOP_GRACE_SECONDS": "20", "DATABASE_POOL_MODE": " Transaction "})
    assert got["RAP_STOP_GRACE_SECONDS"] == "20"
    assert got["DATABASE_POOL_MODE"] == "transaction"
