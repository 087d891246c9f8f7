"""A real Prometheus scrapes the chart on the real node the way a user without the
Prometheus Operator sets it up (deploy/prometheus/scrape-config.yaml: Kubernetes
service discovery for the operator's metrics Service, the shard pods and the search
API), and every dashboard and alert expression returns data for runs that just
happened: an emotion run, an `llm` run against the fake provider (429s and 503s), a
ScrapeJob against the fake Genius, and requests to the search API pod.

The fakes run on the host and listen on the veth's host-side address (the API
server's), the only host address pods reach. Prometheus runs in the node's network
namespace, where pod IPs are routed (the host has no route to them), and listens on
the node's address, which the host reaches over the veth.

A shard pod lives only while it has work, and on an idle node it can finish all of it
between two scrapes (2 s apart), leaving nothing for rate() or histogram_quantile()
to see. So the test holds the last two items of every shard: the runs are planned
suspended, a transaction in the chart's Postgres takes row locks on those items
(`next_batch` claims with SKIP LOCKED, so the shard does everything else, then polls
for them), and the runs are resumed. Once Prometheus has scraped every shard pod
twice after the rest was done, the second-to-last items are let go; once it has
scraped them twice more (the counters and histograms grew between scrapes), the last
ones. No run can finish before its pods have been seen, however loaded the machine."""

from __future__ import annotations

import base64
import json
import math
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rap_devtools import chart_demo as demo
from rap_devtools.fake_genius import FakeGeniusServer
from rap_devtools.fake_llm import FakeLLM
from rap_devtools.helm import CHART
from rap_devtools.prometheus import SCRAPE_CONFIG, Prometheus, config, promtool_check_config
from rap_devtools.realnode.cluster import RealNodeCluster
from rap_devtools.waiting import wait_for

from tests.observability.expressions import all_expressions

NS = "rap-prometheus"
TRACKS = 400
KEY = f"sk-node-{secrets.token_hex(12)}"
GENIUS_TOKEN = f"genius-{secrets.token_hex(8)}"
SEARCH_PORT = 8000
OPERATOR_JOB, SHARD_JOB, SEARCH_JOB = (
    "rap-analyzer-metrics",
    "rap-analyzer-shards",
    "rap-analyzer-search",
)
EMOTION, LLM, SCRAPE = "prom-emotion", "prom-llm", "prom-scrape"
# (run, shard) of every shard pod: the shards of emotion_run, llm_run and scrape_job.
SHARDS = {(EMOTION, "0"), (EMOTION, "1"), (LLM, "0"), (LLM, "1"), (SCRAPE, "0")}
HELD_PER_SHARD = 2  # the last two items of each shard (see the module docstring)
POSTGRES_POD = "rap-analyzer-postgres-0"
PSQL = ('PGPASSWORD="$POSTGRES_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 '
        '-U "$POSTGRES_USER" -d "$POSTGRES_DB"')  # fmt: skip


@dataclass
class Observed:
    cluster: RealNodeCluster
    prom: Prometheus
    start: float
    end: float = 0.0
    search_ip: str = ""
    search_token: str = ""
    llm_log: list[dict[str, Any]] = field(default_factory=list)


def kubectl(c: RealNodeCluster, *args: str, check: bool = True) -> str:
    return c.kubectl("-n", NS, *args, check=check, timeout=120).stdout


def apply(c: RealNodeCluster, doc: dict[str, Any]) -> None:
    c.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(doc), check=True)


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    # Planned but suspended (no pods) until the test holds the last items.
    return {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": kind,
            "metadata": {"name": name}, "spec": {**spec, "suspend": True}}  # fmt: skip


def resume(c: RealNodeCluster) -> None:
    for kind, name in (("analysisrun", EMOTION), ("analysisrun", LLM), ("scrapejob", SCRAPE)):
        kubectl(c, "patch", kind, name, "--type=merge", "-p", '{"spec": {"suspend": false}}')


def psql(c: RealNodeCluster, sql: str) -> str:
    """Through `kubectl exec` into the chart's Postgres, as test_chart_on_node does."""
    cmd = f'{PSQL} -tAc "$0"'
    return kubectl(c, "exec", POSTGRES_POD, "--", "sh", "-c", cmd, sql).strip()


def run_uids(c: RealNodeCluster) -> list[str]:
    names = {EMOTION: "analysisrun", LLM: "analysisrun", SCRAPE: "scrapejob"}
    return [kubectl(c, "get", kind, name, "-o", "jsonpath={.metadata.uid}").strip()
            for name, kind in names.items()]  # fmt: skip


def _runs(uids: list[str]) -> str:
    quoted = ", ".join(f"'{u}'" for u in uids)
    return f"SELECT id FROM runs WHERE uid IN ({quoted})"


def pending_items(c: RealNodeCluster, uids: list[str]) -> int:
    return int(psql(c, f"SELECT count(*) FROM run_items WHERE run_id IN ({_runs(uids)})"
                       " AND state = 'pending'"))  # fmt: skip


def planned(c: RealNodeCluster, uids: list[str]) -> bool:
    got = psql(c, f"SELECT count(DISTINCT run_id) FROM run_items WHERE run_id IN ({_runs(uids)})")
    return int(got) == len(uids)


class HeldItems:
    """Row locks on the `rank`-th last item of every shard of the runs, held by an open
    transaction of a psql in the Postgres pod (kubectl exec, stdin kept open) until
    `release`. Shards skip locked items (next_batch: FOR UPDATE SKIP LOCKED) and wait
    for them: a shard cannot finish while one is held."""

    def __init__(self, c: RealNodeCluster, uids: list[str], rank: int) -> None:
        self.c, self.app = c, f"rap-test-hold-{rank}"
        self.out = tempfile.TemporaryFile()
        argv = [str(c.bin_dir / "kubectl"), f"--kubeconfig={c.kubeconfig}",
                f"--cache-dir={c.workdir / 'kubectl-cache'}", "-n", NS, "exec", "-i",
                POSTGRES_POD, "--", "sh", "-c", f'PGAPPNAME="$0" {PSQL}', self.app]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self.out,
                                     stderr=subprocess.STDOUT, text=True)  # fmt: skip
        assert self.proc.stdin is not None
        self.proc.stdin.write(
            "BEGIN;\n"
            "SELECT i.item_id FROM run_items i JOIN (SELECT run_id, item_id, row_number() OVER"
            " (PARTITION BY run_id, shard ORDER BY item_id DESC) AS pos FROM run_items"
            f" WHERE run_id IN ({_runs(uids)})) r USING (run_id, item_id)"
            f" WHERE r.pos = {rank} FOR UPDATE OF i;\n"
        )
        self.proc.stdin.flush()
        # Held once the SELECT ... FOR UPDATE returned inside the open transaction.
        wait_for(
            lambda: self.proc.poll() is None and psql(c,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                f" '{self.app}' AND state = 'idle in transaction'"
                " AND query LIKE '%FOR UPDATE%'") == "1",
            timeout=60, interval=0.5, what=f"psql to hold the items of rank {rank}",
            describe=self.output,
        )  # fmt: skip

    def output(self) -> str:
        self.out.seek(0)
        return self.out.read().decode(errors="replace")[-2000:]

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("ROLLBACK;\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.out.close()


def shards_scraped_twice_since(prom: Prometheus, t: float) -> set[tuple[str, str]]:
    """The (run, shard) pairs of SHARDS with two successful scrapes that began after `t`."""
    window = math.ceil(time.time() - t) + 5
    got = prom.query(f'up{{job="{SHARD_JOB}", namespace="{NS}"}}[{window}s]')
    return {(s["metric"].get("name"), s["metric"].get("shard")) for s in got
            if sum(float(ts) > t and v == "1" for ts, v in s["values"]) >= 2} & SHARDS  # fmt: skip


def emotion_run() -> dict[str, Any]:
    # Small batches: each is a transaction, so the shards live for many scrapes.
    return resource("AnalysisRun", EMOTION, {
        "analyzer": "emotion", "shards": 2, "parallelism": 2, "batchSize": 2,
        "selection": {"limit": TRACKS},
    })  # fmt: skip


def llm_run(llm: FakeLLM) -> dict[str, Any]:
    # No spec.rateLimit: the fake's own limit (3 requests/s, then 429 + Retry-After)
    # paces the run, and its first 2 requests fail with 503 (retried: the breaker
    # stays closed). A global budget would halve itself on the first 429 and make the
    # run take minutes.
    return resource("AnalysisRun", LLM, {
        "analyzer": "llm", "shards": 2, "parallelism": 2, "batchSize": 4,
        "selection": {"limit": 60},
        "retry": {"initialBackoffSeconds": 0.2, "maxBackoffSeconds": 1},
        "fallbackAnalyzer": "algorithmic",
        "llm": {"provider": "custom", "baseURL": llm.url, "model": "fake-qwen",
                "tracksPerRequest": 2, "concurrency": 2, "timeoutSeconds": 10,
                "apiKeySecretRef": {"name": "llm-key", "key": "apiKey"},
                "pricing": {"promptPerMillion": 0.5, "completionPerMillion": 1.5}},
    })  # fmt: skip


def scrape_job(genius: FakeGeniusServer) -> dict[str, Any]:
    return resource("ScrapeJob", SCRAPE, {
        "artists": genius.catalog.names(3), "maxSongsPerArtist": 5,
        "genius": {"tokenSecretRef": {"name": "genius", "key": "token"},
                   "apiBaseURL": genius.genius_api},
        "rateLimit": {"genius": {"requestsPerMinute": 600}},
        "shards": 1, "parallelism": 1, "batchSize": 2, "concurrency": 1,
    })  # fmt: skip


def search_requests(c: RealNodeCluster, ip: str, token: str) -> list[int]:
    """A few requests of each kind the search API serves (some 404 or 503 on purpose),
    from inside the node's network namespace (pod IPs are routed only there)."""
    paths = ("/healthz", "/search?q=love%20and%20money&limit=3", "/tracks/1",
             "/tracks/99999999", "/tracks/1/similar?limit=3")  # fmt: skip
    codes = demo.get_in_node(c, [f"http://{ip}:{SEARCH_PORT}{p}" for p in paths], token)
    assert 401 not in codes, codes
    return codes


def search_token(c: RealNodeCluster) -> str:
    """The token the chart's hook generated (Secret <release>-search-token)."""
    secret = demo.get(c, NS, "secret", f"{demo.RELEASE}-search-token")
    assert secret is not None, "the search token hook wrote no Secret"
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) >= 32
    return token


def finished(c: RealNodeCluster) -> dict[str, str | None]:
    return {
        EMOTION: demo.run_phase(c, NS, EMOTION),
        LLM: demo.run_phase(c, NS, LLM),
        SCRAPE: demo.scrapejob_phase(c, NS, SCRAPE),
    }


@pytest.fixture(scope="module")
def observed(node_cluster: RealNodeCluster) -> Iterator[Observed]:
    c = node_cluster
    host = c.controlplane.address  # the veth's host end: pods reach it
    llm = demo.start_fake_on(FakeLLM, host, api_key=KEY, latency_p50=0.1, latency_p95=0.25,
                             rate_limit=3, rate_window=1.0, fail_next=2)  # fmt: skip
    genius = demo.start_fake_on(FakeGeniusServer, host, genius_token=GENIUS_TOKEN,
                                page_latency=0.3)  # fmt: skip
    prom = Prometheus(c.kubeconfig, namespaces=[NS], scrape_interval="2s",
                      argv_prefix=c.network.nsenter(), listen_host=c.network.node_ip)  # fmt: skip
    installed = False
    held: list[HeldItems] = []
    try:
        prom.start()
        demo.create_restricted_namespace(c, NS)
        installed = True
        demo.helm(c, "install", demo.RELEASE, str(CHART), f"--namespace={NS}",
                  # search.auth on (the default): the chart's hook Job generates
                  # the token Secret in a real pod, and the requests carry it.
                  *demo.chart_values("dev"), "--set=search.enabled=true",
                  # The admin policy: the fakes' host and the runs' Secrets.
                  f"--set=policy.allowedHosts.llm={{{host}}}",
                  f"--set=policy.allowedHosts.genius={{{host}}}",
                  "--set=policy.secrets.allowed={llm-key,genius}",
                  "--wait", "--timeout=5m")  # fmt: skip
        demo.seed(c, TRACKS, namespace=NS)
        demo.create_secret(c, NS, "llm-key", {"apiKey": KEY})
        demo.create_secret(c, NS, "genius", {"token": GENIUS_TOKEN})
        obs = Observed(c, prom, start=time.time())
        for doc in (emotion_run(), llm_run(llm), scrape_job(genius)):
            apply(c, doc)
        uids = run_uids(c)
        wait_for(lambda: planned(c, uids), timeout=120, interval=1.0,
                 what="the runs and the ScrapeJob to be planned",
                 describe=lambda: kubectl(c, "get", "analysisruns,scrapejobs", "-o", "yaml"))  # fmt: skip
        held = [HeldItems(c, uids, rank) for rank in range(HELD_PER_SHARD, 0, -1)]
        resume(c)
        obs.search_ip = wait_for(
            lambda: (ips := demo.pod_ips(c, NS, "app.kubernetes.io/component=search")) and ips[0],
            timeout=60, what="the search API pod's IP",
        )  # fmt: skip
        obs.search_token = search_token(c)
        # Without the token only the probes answer.
        assert demo.get_in_node(c, [f"http://{obs.search_ip}:{SEARCH_PORT}{p}"
                                    for p in ("/healthz", "/search?q=x", "/tracks/1")]) == [
            200, 401, 401]  # fmt: skip
        search_requests(c, obs.search_ip, obs.search_token)
        # Let go of the held items a rank at a time, each once every shard pod has
        # done all it could and Prometheus has scraped it twice since.
        for i, hold in enumerate(held):
            left = (len(held) - i) * len(SHARDS)
            wait_for(
                lambda left=left: pending_items(c, uids) == left,
                timeout=240, interval=1.0, what=f"the shards to do all but {left} items",
                describe=lambda: f"{pending_items(c, uids)} pending\n{finished(c)}\n"
                                 + kubectl(c, "get", "pods", "-o", "wide"),
            )  # fmt: skip
            done_at = time.time()
            wait_for(
                lambda done_at=done_at: shards_scraped_twice_since(prom, done_at) == SHARDS,
                timeout=60, interval=0.5, what="two scrapes of every shard pod",
                describe=lambda done_at=done_at: f"scraped twice: "
                f"{shards_scraped_twice_since(prom, done_at)}\n"
                + json.dumps([{k: t.get(k) for k in ("labels", "health", "lastError")}
                              for t in prom.targets()], indent=1)[-3000:],
            )  # fmt: skip
            hold.release()
        wait_for(
            lambda: all(p in ("Succeeded", "Failed") for p in finished(c).values()),
            timeout=240, interval=1.0, what="the runs and the ScrapeJob to finish",
            describe=lambda: f"{finished(c)}\n" + kubectl(c, "get", "pods", "-o", "wide"),
        )  # fmt: skip
        search_requests(c, obs.search_ip, obs.search_token)
        obs.llm_log = llm.log()
        # One more scrape of everything still running (operator, search API).
        scraped_at = time.time()
        wait_for(
            lambda: all(_ts(t["lastScrape"]) > scraped_at
                        for t in prom.targets() if t["labels"]["job"] != SHARD_JOB),
            timeout=30, interval=0.5, what="a scrape after the runs finished",
        )  # fmt: skip
        obs.end = time.time()
        yield obs
    finally:
        for hold in held:
            hold.release()
        prom.stop()
        llm.stop()
        genius.stop()
        if installed:
            # Runs first, while the operator is there to let their Jobs go.
            c.kubectl("-n", NS, "delete", "analysisruns,scrapejobs", "--all", "--wait",
                      "--timeout=120s", timeout=150)  # fmt: skip
            demo.helm(c, "uninstall", demo.RELEASE, f"--namespace={NS}", "--wait",
                      "--timeout=3m")  # fmt: skip
            c.kubectl("delete", "namespace", NS, "--wait", "--timeout=180s", timeout=200)


def _ts(rfc3339: str) -> float:
    # Prometheus writes nanoseconds; fromisoformat takes at most microseconds.
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    return datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp() + float(f"0.{frac or 0}")


def test_promtool_accepts_the_generated_config(tmp_path: Path) -> None:
    import yaml

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config(kubeconfig, namespaces=["ns"])))
    assert "SUCCESS" in promtool_check_config(path)
    # The user's file itself, as it would sit in prometheus.yml (in-cluster SD).
    assert "SUCCESS" in promtool_check_config(SCRAPE_CONFIG)


def test_the_runs_succeeded_and_used_the_fakes(observed: Observed) -> None:
    assert finished(observed.cluster) == {EMOTION: "Succeeded", LLM: "Succeeded",
                                          SCRAPE: "Succeeded"}  # fmt: skip
    statuses = {e["status"] for e in observed.llm_log}
    assert {200, 429, 503} <= statuses, statuses


def test_both_operator_targets_are_up_and_one_leads(observed: Observed) -> None:
    # Both replicas serve metrics (a follower too); rap_operator_leader says which leads.
    up = observed.prom.query(f'up{{job="{OPERATOR_JOB}"}}', at=observed.end)
    assert [(s["metric"]["namespace"], s["value"][1]) for s in up] == [(NS, "1")] * 2, up
    assert all(s["metric"]["pod"].startswith(demo.RELEASE) for s in up), up
    leading = observed.prom.query(
        f'sum(rap_operator_leader{{job="{OPERATOR_JOB}"}})', at=observed.end
    )
    assert [s["value"][1] for s in leading] == ["1"], leading


def test_shard_pods_were_scraped_with_run_labels(observed: Observed) -> None:
    p, start, end = observed.prom, observed.start, observed.end
    for name, kind in ((EMOTION, "analysisrun"), (LLM, "analysisrun"), (SCRAPE, "scrapejob")):
        ups = p.series(f'up{{job="{SHARD_JOB}", namespace="{NS}", name="{name}"}}', start, end)
        assert ups and {s["kind"] for s in ups} == {kind}, (name, ups)
        assert all(s["pod"].startswith(name) and s["shard"].isdigit() for s in ups), ups
        scraped = p.query_range(f'up{{job="{SHARD_JOB}", name="{name}"}} == 1', start, end, 2)
        assert scraped, f"no successful scrape of a shard pod of {name}: {ups}"
    items = p.series(f'rap_analyzer_items_total{{name="{EMOTION}"}}', start, end)
    assert {s["analyzer"] for s in items} == {"emotion"}, items
    assert p.series(f'rap_scraper_requests_total{{name="{SCRAPE}"}}', start, end)
    assert p.series(f'up{{job="{SEARCH_JOB}", namespace="{NS}"}}', start, end)


def _has_value(series: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(v)) for s in series for _, v in s["values"])


def test_every_dashboard_and_alert_expression_returns_data(observed: Observed) -> None:
    p = observed.prom
    empty, nan_only = [], []
    expressions = all_expressions()
    assert expressions
    for e in expressions:
        series = p.query_range(e.query, observed.start, observed.end, step=3)
        if not series:
            empty.append(e)
        elif not _has_value(series):
            nan_only.append(e)
    lines = [f"  {e.source} {e.name!r}: no series: {e.query}" for e in empty]
    lines += [f"  {e.source} {e.name!r}: only NaN: {e.query}" for e in nan_only]
    assert not lines, (
        f"{len(lines)} of {len(expressions)} expressions returned no data between "
        f"{observed.start:.0f} and {observed.end:.0f}:\n" + "\n".join(lines)
    )
