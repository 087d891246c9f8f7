"""charts/rap-analyzer: the ledger gc CronJob (issue 16) runs `rap-analyzer db gc` with
the database Secret the operator's runs use, one at a time, Pod Security "restricted"."""

from __future__ import annotations

from typing import Any

import pytest
from rap_devtools.helm import find, only, operator_env, render_chart
from typer.testing import CliRunner

from analyzer_runtime.cli import app
from analyzer_runtime.ledger import gc as ledger_gc
from tests.unit.test_chart_podsecurity import pod_templates, restricted_violations

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)


def _cronjob(values: dict[str, Any] | None = None) -> dict[str, Any]:
    return only(render_chart(values), "CronJob")


def _container(cj: dict[str, Any]) -> dict[str, Any]:
    (c,) = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return c


def test_defaults() -> None:
    docs = render_chart()
    cj = only(docs, "CronJob")
    assert cj["metadata"]["name"] == "rap-analyzer-ledger-gc"
    assert cj["spec"]["schedule"] == "17 3 * * *"
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    assert "timeZone" not in cj["spec"]
    pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False  # no Kubernetes API calls
    c = _container(cj)
    assert c["command"] == ["python", "-m", "analyzer_runtime", "db", "gc", "--older-than", "30d"]
    # The worker image, the one the Job pods run.
    assert c["image"] == operator_env(docs)["RAP_RUNTIME_IMAGE"]
    # The database URL Secret the operator gives its runs (RAP_DATABASE_SECRET[_KEY]).
    env = operator_env(docs)
    (db,) = c["env"]
    assert db["name"] == "DATABASE_URL"
    assert db["valueFrom"]["secretKeyRef"] == {
        "name": env["RAP_DATABASE_SECRET"],
        "key": env["RAP_DATABASE_SECRET_KEY"],
    }
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize(
    "values",
    [
        None,
        {"database": {"existingSecret": "my-db", "existingSecretKey": "dsn"}},
        {"database": {"url": "postgresql://u:p@h/db"}, "postgres": {"enabled": False}},
    ],
)
def test_the_pod_is_restricted_and_reads_the_database_secret(values: dict[str, Any] | None) -> None:
    docs = render_chart(values)
    (where, template), *_ = [(w, t) for w, t in pod_templates(docs) if w.startswith("CronJob/")]
    assert restricted_violations(template) == [], where
    ref = _container(only(docs, "CronJob"))["env"][0]["valueFrom"]["secretKeyRef"]
    env = operator_env(docs)
    assert (ref["name"], ref["key"]) == (env["RAP_DATABASE_SECRET"], env["RAP_DATABASE_SECRET_KEY"])
    if values and "existingSecret" in values["database"]:
        assert ref == {"name": "my-db", "key": "dsn"}


def test_values() -> None:
    cj = _cronjob(
        {"ledgerGC": {"schedule": "0 * * * *", "olderThan": "12h", "timeZone": "Etc/UTC"}}
    )
    assert cj["spec"]["schedule"] == "0 * * * *"
    assert cj["spec"]["timeZone"] == "Etc/UTC"
    assert _container(cj)["command"][-2:] == ["--older-than", "12h"]
    assert find(render_chart({"ledgerGC": {"enabled": False}}), "CronJob") == []


def test_the_command_is_one_the_cli_takes() -> None:
    cmd = _container(_cronjob())["command"]
    assert cmd[:3] == ["python", "-m", "analyzer_runtime"]
    ledger_gc.parse_duration(cmd[-1])  # the default retention parses
    res = CliRunner().invoke(app, [*cmd[3:5], "--help"])
    assert res.exit_code == 0 and "--older-than" in res.output and "--dry-run" in res.output


def test_a_long_release_name_still_makes_a_valid_cronjob_name() -> None:
    name = _cronjob({"fullnameOverride": "x" * 63})["metadata"]["name"]
    assert len(name) <= 52 and name.endswith("-ledger-gc")
