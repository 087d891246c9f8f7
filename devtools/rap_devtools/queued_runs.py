"""AnalysisRuns in a Kueue queue, on a kind cluster with Kueue installed as users
install it: the steps the Kueue e2e tests (tests/node/test_kueue_runs_on_kind.py)
and the preemption benchmark (bench/kueue_preemption.py) share.

One ClusterQueue with room for 2 pods (Kueue's `pods` resource) and a LocalQueue in
the chart's namespace; a WorkloadPriorityClass `rap-high` for the Jobs that preempt.
Everything is read as a user reads it: kubectl, and psql inside the chart's Postgres.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rap_devtools import chart_demo, kueue
from rap_devtools.cluster import ClusterAccess
from rap_devtools.waiting import wait_for

NS = chart_demo.NAMESPACE
QUEUE = "shards"
CLUSTER_QUEUE = "rap-shards"
QUEUE_PODS = 2
HIGH = "rap-high"


def setup(cluster: Any, tracks: int) -> None:
    """Kueue, the chart (its Postgres seeded with `tracks`), and the queues."""
    cluster.load_docker_images([kueue.IMAGE])
    kueue.install(cluster)
    chart_demo.create_restricted_namespace(cluster, NS)
    chart_demo.install(cluster, "dev", NS)
    chart_demo.seed(cluster, tracks)
    kueue.apply(
        cluster,
        kueue.resource_flavor(),
        kueue.cluster_queue(CLUSTER_QUEUE, {"pods": QUEUE_PODS}),
        kueue.local_queue(NS, QUEUE, CLUSTER_QUEUE),
        kueue.workload_priority_class(HIGH, 1000, "preempts analysis runs"),
    )


def teardown(cluster: Any) -> None:
    chart_demo.uninstall(cluster, NS)
    kueue.uninstall(cluster)


def kubectl(cluster: ClusterAccess, *args: str, check: bool = True, **kw: Any) -> str:
    return cluster.kubectl("-n", NS, *args, check=check, timeout=120, **kw).stdout


def psql(cluster: ClusterAccess, sql: str) -> str:
    return chart_demo.psql(cluster, sql, NS)


def apply_run(cluster: ClusterAccess, name: str, **spec: Any) -> None:
    run = {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {"analyzer": "emotion", "batchSize": 10, **spec},
    }
    kubectl(cluster, "apply", "-f", "-", input=json.dumps(run))


def status(cluster: ClusterAccess, name: str) -> dict[str, Any]:
    got = chart_demo.get(cluster, NS, "analysisrun", name) or {}
    return dict(got.get("status") or {})


def condition(st: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in st.get("conditions") or [] if c.get("type") == kind), None)


def run_job(cluster: ClusterAccess, name: str) -> dict[str, Any] | None:
    job = status(cluster, name).get("jobName")
    return chart_demo.get(cluster, NS, "job", job) if job else None


def events(cluster: ClusterAccess, name: str) -> list[tuple[str, str]]:
    out = kubectl(cluster, "get", "events", "--field-selector",
                  f"involvedObject.kind=AnalysisRun,involvedObject.name={name}", "-o", "json")  # fmt: skip
    items = sorted(json.loads(out)["items"], key=lambda e: e.get("lastTimestamp") or "")
    return [(e["reason"], e.get("message") or "") for e in items]


def leases_held(cluster: ClusterAccess, name: str) -> int:
    return int(psql(cluster, "SELECT count(*) FROM run_items i JOIN runs r ON r.id = i.run_id"
                             f" WHERE r.name = '{name}' AND i.claimed_by IS NOT NULL"))  # fmt: skip


def processed(cluster: ClusterAccess, name: str) -> int:
    return int(psql(cluster, "SELECT count(*) FROM run_items i JOIN runs r ON r.id = i.run_id"
                             f" WHERE r.name = '{name}' AND i.state <> 'pending'"))  # fmt: skip


@dataclass(frozen=True)
class Ledger:
    results: int  # analysis_results rows of the analyzer
    distinct_tracks: int
    done: int  # the run's items done
    crashes: int  # leases that expired unfinished (a crash charged to an item)


def ledger(cluster: ClusterAccess, name: str, analyzer: str = "emotion") -> Ledger:
    results, distinct = psql(cluster, "SELECT count(*), count(DISTINCT track_id) FROM"
                                      f" analysis_results WHERE analyzer_type = '{analyzer}'").split("|")  # fmt: skip
    done, crashes = psql(cluster, "SELECT count(*) FILTER (WHERE i.state = 'done'),"
                                  " coalesce(sum(i.crashes), 0) FROM run_items i JOIN runs r"
                                  f" ON r.id = i.run_id WHERE r.name = '{name}'").split("|")  # fmt: skip
    return Ledger(int(results), int(distinct), int(done), int(crashes))


def high_priority_job(name: str, pods: int, seconds: int) -> dict[str, Any]:
    """A Job of higher priority in the same queue that wants every pod of the quota
    (runs `sleep` in our image, restricted like the shard pods)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {kueue.QUEUE_LABEL: QUEUE, kueue.PRIORITY_LABEL: HIGH},
        },
        "spec": {
            "parallelism": pods,
            "completions": pods,
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "urgent",
                            "image": f"{chart_demo.IMAGE_REPO}:dev",
                            "imagePullPolicy": "Never",
                            "command": ["sleep", str(seconds)],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                }
            },
        },
    }


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds, the database's clock (the host's: kind shares its kernel)
    leased: int  # the run's items leased right then
    finished: int  # the run's items no longer pending


SAMPLER_SQL = """DO $$ DECLARE run bigint; h int; d int; BEGIN
  SELECT id INTO run FROM runs WHERE name = '{run}';
  FOR i IN 1..{n} LOOP
    SELECT count(*) FILTER (WHERE claimed_by IS NOT NULL), count(*) FILTER (WHERE state <> 'pending')
      INTO h, d FROM run_items WHERE run_id = run;
    RAISE NOTICE 'S % % %', extract(epoch FROM clock_timestamp()), h, d;
    PERFORM pg_sleep({every});
  END LOOP; END $$"""


def start_sampler(
    cluster: ClusterAccess, run: str, seconds: float, every: float = 0.05
) -> subprocess.Popen[str]:
    """Sample the run's leases inside Postgres every `every` s for `seconds` (one
    statement per sample, each with a fresh snapshot): what polling through kubectl
    exec (~0.3-1 s a look) cannot resolve. `parse_samples(proc.communicate()[1])`."""
    sql = SAMPLER_SQL.format(run=run, n=int(seconds / every), every=every)
    cmd = f'{chart_demo.PSQL} -q -c "$0"'
    return subprocess.Popen(
        [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", "-n", NS,
         "exec", "rap-analyzer-postgres-0", "--", "sh", "-c", cmd, sql],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def parse_samples(text: str) -> list[Sample]:
    out = []
    for line in text.splitlines():
        _, sep, rest = line.partition("NOTICE:  S ")
        if sep:
            at, leased, finished = rest.split()
            out.append(Sample(float(at), int(leased), int(finished)))
    return out


def released_at(samples: list[Sample], after: float, quiet: float = 3.0) -> float | None:
    """The time of the first sample after `after` from which nothing of the run is
    leased for `quiet` seconds (its pods are gone: the last lease was given back)."""
    for i, s in enumerate(samples):
        if s.at < after or s.leased:
            continue
        window = [x for x in samples[i:] if x.at <= s.at + quiet]
        if window[-1].at - s.at >= quiet * 0.9 and all(x.leased == 0 for x in window):
            return s.at
    return None


def first_progress_at(samples: list[Sample], after: float) -> float | None:
    """The first sample after `after` with more items finished than at `after`."""
    base = next((s.finished for s in reversed(samples) if s.at <= after), None)
    if base is None:
        return None
    return next((s.at for s in samples if s.at > after and s.finished > base), None)


@dataclass(frozen=True)
class Preemption:
    """Seconds, sampled inside Postgres every 50 ms (the kind node shares the host's clock)."""

    submit_to_suspended: float  # the preempting Job created -> the run's Job seen suspended
    submit_to_last_lease: float  # -> nothing of the run leased any more (goal < 5 s)
    leased_at_submit: int  # the run's items leased when the preempting Job came
    readmitted_to_first_item: float | None  # the Job seen unsuspended -> an item finished


def preempt(
    cluster: ClusterAccess,
    run: str,
    urgent: str,
    seconds: int = 20,
    while_held: Callable[[], None] | None = None,
) -> Preemption:
    """Submit a higher-priority Job that needs the whole quota for `seconds` while `run`
    works; time what follows, until the run is readmitted. `while_held` is called once
    the run's Job is suspended (to look at the run while it waits)."""
    job = run_job(cluster, run)
    assert job is not None, "the run has no Job"
    sampler = start_sampler(cluster, run, seconds + 60)
    time.sleep(1.0)  # the sampler's first samples precede the submit

    def suspended() -> bool:
        return ((run_job(cluster, run) or {}).get("spec") or {}).get("suspend") is True

    submitted = time.time()
    kubectl(
        cluster,
        "create",
        "-f",
        "-",
        input=json.dumps(high_priority_job(urgent, QUEUE_PODS, seconds)),
    )
    wait_for(suspended, timeout=120, interval=0.1, what="Kueue to suspend the run's Job")
    seen_suspended = time.time()
    if while_held is not None:
        while_held()
    wait_for(lambda: not suspended(), timeout=seconds + 180, interval=0.1,
             what="Kueue to readmit the run")  # fmt: skip
    readmitted = time.time()
    _, err = sampler.communicate(timeout=seconds + 180)
    samples = parse_samples(err)
    assert samples, f"no samples from the sampler: {err[-2000:]}"
    at_submit = next((s.leased for s in reversed(samples) if s.at <= submitted), 0)
    last = released_at(samples, submitted)
    first = first_progress_at(samples, readmitted)
    return Preemption(
        submit_to_suspended=round(seen_suspended - submitted, 2),
        submit_to_last_lease=round(last - submitted, 2) if last is not None else float("nan"),
        leased_at_submit=at_submit,
        readmitted_to_first_item=round(first - readmitted, 2) if first is not None else None,
    )
