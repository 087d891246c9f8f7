"""The Lua health checks in deploy/argocd/health, run by Argo CD itself:

    bin/argocd admin settings resource-overrides health FIXTURE \
        --argocd-cm-path deploy/argocd/argocd-cm-health.yaml

on one resource per case (tests/gitops/fixtures, statuses as the operator's
compute_status writes them). It prints `STATUS: ...` and `MESSAGE: ...` on
stdout; its logs go to stderr."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
FIXTURES = HERE / "fixtures"
ARGOCD_CM = REPO_ROOT / "deploy" / "argocd" / "argocd-cm-health.yaml"

AR_KEPT = (
    "; results already written are kept, and a new run with selection.onlyMissing"
    " analyzes the remaining tracks"
)
SJ_KEPT = (
    "; tracks already scraped are kept, and a new ScrapeJob over the same artists"
    " adds only the songs still missing"
)
SHARD_1_FAILED = "shard 1 exhausted its pod retries (spec.retry.backoffLimitPerIndex)"
SUSPENDED = "spec.suspend is true; set it to false to resume"

# fixture -> (STATUS, MESSAGE)
EXPECTED: dict[str, tuple[str, str]] = {
    "analysisrun-no-status": ("Progressing", "waiting for the operator"),
    "analysisrun-pending": (
        "Progressing",
        "Pending: 0/5000 (0.0%) (waiting for shards to start)",
    ),
    "analysisrun-pods-not-ready": (
        "Progressing",
        "Pending: 0/5000 (0.0%) (waiting for shards to start); pods: ImagePullBackOff:"
        ' pod algorithmic-demo-0b8f5a52-0-x7k2p: Back-off pulling image "rap-analyzer:dev"',
    ),
    "analysisrun-running": ("Progressing", "Running: 2000/5000 (40.0%), ETA 15m1s"),
    "analysisrun-suspended": ("Suspended", f"Suspended at 2000/5000 (40.0%); {SUSPENDED}"),
    "analysisrun-succeeded": (
        "Healthy",
        "Succeeded: 5000/5000 (100.0%); all 2 shards finished 5000 tracks",
    ),
    "analysisrun-completed-with-errors": (
        "Healthy",
        "Succeeded: 5000/5000 (100.0%); all 2 shards finished 5000 tracks;"
        " CompletedWithErrors: 37 of 5000 tracks failed after all attempts and have no"
        " result; a new run with selection.onlyMissing: true (the default) retries exactly"
        " those tracks",
    ),
    "analysisrun-failed": ("Degraded", SHARD_1_FAILED + AR_KEPT),
    "analysisrun-invalid-spec": ("Degraded", "spec.shards must be at least 1"),
    "analysisrun-input-missing": (
        "Degraded",
        "Secret default/rap-analyzer-db does not exist (no spec.database.secretRef, so the"
        " operator's default Secret 'rap-analyzer-db' is used)",
    ),
    "analysisrun-spec-change-refused": (
        "Degraded",
        "selection cannot change after planning; the run continues with the planned spec."
        " Revert the change, or create a new AnalysisRun",
    ),
    "scrapejob-no-status": ("Progressing", "waiting for the operator"),
    "scrapejob-pending": ("Progressing", "Pending: 0/4 (0.0%) (waiting for shards to start)"),
    # No ETA yet (throughput rounds to 0): progress alone.
    "scrapejob-running": ("Progressing", "Running: 1/4 (25.0%)"),
    "scrapejob-suspended": ("Suspended", f"Suspended at 1/4 (25.0%); {SUSPENDED}"),
    "scrapejob-succeeded": ("Healthy", "Succeeded: 4/4 (100.0%); all 2 shards finished 4 artists"),
    "scrapejob-completed-with-errors": (
        "Healthy",
        "Succeeded: 4/4 (100.0%); all 2 shards finished 4 artists; CompletedWithErrors:"
        " 1 of 4 artists failed (status.failedArtists says why); the songs of the other"
        " artists are in the corpus",
    ),
    "scrapejob-failed": ("Degraded", SHARD_1_FAILED + SJ_KEPT),
    "scrapejob-invalid-spec": ("Degraded", "spec.artists must not be empty"),
    "scrapejob-input-missing": ("Degraded", "Secret default/genius does not exist"),
    "scrapejob-spec-change-refused": (
        "Degraded",
        "artists cannot change after planning; the job continues with the planned spec."
        " Revert the change, or create a new ScrapeJob",
    ),
}


def health(argocd: Path, fixture: Path) -> tuple[str, str]:
    """(STATUS, MESSAGE) Argo CD computes for the resource in `fixture`."""
    # The multi-call binary acts as the CLI whatever it is called.
    env = {**os.environ, "ARGOCD_BINARY_NAME": "argocd"}
    proc = subprocess.run(
        [argocd, "admin", "settings", "resource-overrides", "health", str(fixture),
         "--argocd-cm-path", str(ARGOCD_CM)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"argocd failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    fields = dict(
        line.split(": ", 1)
        for line in proc.stdout.splitlines()
        if line.startswith(("STATUS: ", "MESSAGE: "))
    )
    assert "STATUS" in fields, f"no STATUS line in the output:\n{proc.stdout}\n{proc.stderr}"
    return fields["STATUS"], fields.get("MESSAGE", "")


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_health(argocd: Path, name: str) -> None:
    assert health(argocd, FIXTURES / f"{name}.yaml") == EXPECTED[name]
