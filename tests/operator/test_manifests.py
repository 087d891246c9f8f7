"""The operator's pure parts: Job manifests, validation, config, refused spec changes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rap_operator import manifests
from rap_operator.config import OperatorConfig
from rap_operator.kinds import ANALYSIS
from rap_operator.validation import InvalidRun, check_spec

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
    job = manifests.analysis_job(
        body(retry={"backoffLimitPerIndex": 2}, ttlSecondsAfterFinished=600), cfg
    )
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (4, 2, 2)
    assert spec["ttlSecondsAfterFinished"] == 600 and spec["suspend"] is False
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


def test_spec_overrides_reach_the_job() -> None:
    b = body(
        database={"secretRef": {"name": "mydb", "key": "dsn"}},
        image="other:2",
        suspend=True,
        resources={"limits": {"memory": "512Mi", "cpu": 1}},
    )
    job = manifests.analysis_job(b, OperatorConfig())
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "other:2"
    assert c["resources"] == {"limits": {"memory": "512Mi", "cpu": "1"}}
    db = next(e for e in c["env"] if e["name"] == "DATABASE_URL")
    assert db["valueFrom"]["secretKeyRef"] == {"name": "mydb", "key": "dsn"}
    assert job["spec"]["suspend"] is True
    assert manifests.job_patch_for_spec(b["spec"]) == {"spec": {"suspend": True, "parallelism": 2}}


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
