"""A real Prometheus (bin/prometheus, `make prometheus`) as a local process for tests.

    with Prometheus(kubeconfig=cluster.kubeconfig, namespaces=["ns"]) as prom:
        prom.wait_for_target("rap-analyzer-metrics")
        prom.query_range("sum by (phase) (rap_operator_runs)", start, end, step=5)

Its scrape jobs are the ones users copy: deploy/prometheus/scrape-config.yaml, with
every `kubernetes_sd_configs` entry pointed at the cluster's API server through a
kubeconfig (`kubeconfig_file:`), a short scrape interval (short-lived shard pods are
scraped too) and, optionally, the namespaces to watch. It listens on a free port
(127.0.0.1 unless told otherwise), keeps its TSDB in a temp dir, and is ready when
/-/ready says so.

Pod IPs of the real node are routed only inside the node's network namespace (the
host has no route to them: a connection from the host would go to its default
gateway). There, Prometheus runs with `argv_prefix=cluster.network.nsenter()` and
`listen_host=cluster.network.node_ip`: it reaches the pods on their bridge and the
API server over the veth, and the host reaches its HTTP API on the node's address.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from rap_devtools.cluster import REPO_ROOT
from rap_devtools.procs import ManagedProcess, free_port, make_owned_tempdir, sweep_stale_tempdirs
from rap_devtools.waiting import wait_for

SCRAPE_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "scrape-config.yaml"
TEMP_PREFIX = "rap-prometheus-"
JSON = dict[str, Any]


class PrometheusError(RuntimeError):
    pass


def config(
    kubeconfig: Path,
    *,
    scrape_config: Path = SCRAPE_CONFIG,
    scrape_interval: str = "2s",
    namespaces: Sequence[str] = (),
    rule_files: Sequence[Path] = (),
) -> JSON:
    """prometheus.yml: the user's scrape jobs, aimed at a cluster through ``kubeconfig``."""
    jobs = copy.deepcopy(yaml.safe_load(scrape_config.read_text())["scrape_configs"])
    for job in jobs:
        job["scrape_interval"] = scrape_interval
        job["scrape_timeout"] = scrape_interval
        for sd in job.get("kubernetes_sd_configs", []):
            sd["kubeconfig_file"] = str(kubeconfig)
            if namespaces:
                sd["namespaces"] = {"names": list(namespaces)}
    doc: JSON = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": jobs,
    }
    if rule_files:
        doc["rule_files"] = [str(p) for p in rule_files]
    return doc


def promtool_check_config(path: Path, bin_dir: Path = REPO_ROOT / "bin") -> str:
    """`promtool check config PATH` (also loads rule files); raises with its output."""
    out = subprocess.run(
        [str(bin_dir / "promtool"), "check", "config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if out.returncode != 0:
        raise PrometheusError(f"promtool check config failed:\n{out.stdout}{out.stderr}")
    return out.stdout + out.stderr


class Prometheus:
    def __init__(
        self,
        kubeconfig: Path,
        *,
        bin_dir: Path = REPO_ROOT / "bin",
        scrape_config: Path = SCRAPE_CONFIG,
        scrape_interval: str = "2s",
        namespaces: Sequence[str] = (),
        rule_files: Sequence[Path] = (),
        ready_timeout: float = 60.0,
        listen_host: str = "127.0.0.1",
        argv_prefix: Sequence[str] = (),
    ) -> None:
        self.binary = bin_dir / "prometheus"
        self.listen_host = listen_host
        self.argv_prefix = list(argv_prefix)
        self.bin_dir = bin_dir
        self.ready_timeout = ready_timeout
        self.config = config(
            kubeconfig, scrape_config=scrape_config, scrape_interval=scrape_interval,
            namespaces=namespaces, rule_files=rule_files,
        )  # fmt: skip
        self.workdir: Path | None = None
        self.port = 0
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen_host}:{self.port}"

    @property
    def config_path(self) -> Path:
        assert self.workdir is not None, "not started"
        return self.workdir / "prometheus.yml"

    # -- lifecycle -------------------------------------------------------------

    def write_config(self) -> Path:
        if self.workdir is None:
            sweep_stale_tempdirs(TEMP_PREFIX)
            self.workdir = make_owned_tempdir(TEMP_PREFIX)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config_path

    def start(self) -> Prometheus:
        if not self.binary.is_file():
            raise PrometheusError(f"{self.binary} is missing: run `make prometheus`")
        path = self.write_config()
        assert self.workdir is not None
        self.port = free_port()
        self.process = ManagedProcess("prometheus", [
            *self.argv_prefix,
            str(self.binary),
            f"--config.file={path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.listen_host}:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=info",
        ], self.workdir / "prometheus.log", cwd=self.workdir)  # fmt: skip
        self.process.start()
        try:
            wait_for(
                self._ready, timeout=self.ready_timeout, interval=0.2,
                what="Prometheus /-/ready", describe=self.log_tail,
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if not self.process.running():
            raise PrometheusError(f"prometheus exited:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines) if self.process else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP API --------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; returns `data`, raises PrometheusError on an error."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[JSON]:
        """An instant query: the vector's series (`metric`, `value`)."""
        data = self.api("query", query=expr, time=at)
        return list(data["result"]) if data["resultType"] in ("vector", "matrix") else [data]

    def query_range(self, expr: str, start: float, end: float, step: float = 5.0) -> list[JSON]:
        """A range query: series with `metric` and `values` ([t, "v"], ...)."""
        data = self.api("query_range", query=expr, start=start, end=end, step=step)
        return list(data["result"])

    def targets(self, state: str = "active") -> list[JSON]:
        return list(self.api("targets", state=state)[f"{state}Targets"])

    def series(self, match: str, start: float, end: float | None = None) -> list[JSON]:
        """Label sets of the series matching ``match`` seen since ``start``."""
        return list(self.api("series", **{"match[]": match, "start": start,
                                          "end": end or time.time()}))  # fmt: skip

    def wait_for_target(self, job: str, timeout: float = 60.0, health: str = "up") -> list[JSON]:
        """Targets of ``job`` once at least one has been scraped with ``health``."""
        return wait_for(
            lambda: [t for t in self.targets() if t["labels"].get("job") == job
                     and t["health"] == health],
            timeout=timeout, interval=0.5, what=f"a {health} target of job {job}",
            describe=lambda: json.dumps(
                [{k: t.get(k) for k in ("labels", "health", "lastError", "scrapeUrl")}
                 for t in self.targets()], indent=1)[-3000:] + "\n" + self.log_tail(10),
        )  # fmt: skip
