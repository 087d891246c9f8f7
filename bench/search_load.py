"""The search API under 200 concurrent clients (issue 23): readiness must hold.

    make bench-search-load       # = python -m bench.search_load --tracks 5000

On a fresh embedded Postgres: N seeded tracks, each with a real vector of the model
(the heads bench/search_bench.py computes, cached under build/), the HNSW index; then
`rap-analyzer serve` as a process with the chart's defaults (a bearer token, 32
requests in flight, 4 connections, 2 s acquire timeout, 5 s statement timeout,
/metrics and /readyz on the management port). While a prober asks what the chart's
probes ask, /readyz on the management port and /healthz on the API's, every 0.5 s
with the chart's probe settings (a non-200 or an answer after more than 5 s is a
failed probe; 3 failed /readyz in a row would take the pod out of the Service):

- burst: WAVES waves of 200 simultaneous GET /search (200 connections, one request
  each, the next wave once all answered);
- sustained: 200 clients for SECONDS s, each sending its next search as soon as the
  last answered, waiting Retry-After (1 s) after a 429 as a client should.

Reported: p50/p95 latency of the 200s, the 429 share, other statuses, failed probes
and readiness lost (the goal: 0), and the server's own rap_search_rejected_total. The client
runs on the same machine as the server and Postgres (2 shared cores here), so the
latencies include its own CPU contention.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from analyzer_runtime import search
from analyzer_runtime.corpus.synthetic import generate_tracks
from bench.search_bench import _load, corpus_vectors, head

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "analyzer_runtime"]
TOKEN = "bench-token"
CLIENTS = 200
errors: dict[str, int] = {}  # the client's transport errors by type (status "0")
PROBE_EVERY = 0.5
PROBE_TIMEOUT = 5.0
FAILURE_THRESHOLD = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _summary(latencies: list[float], codes: list[int]) -> dict[str, Any]:
    by_code: dict[str, int] = {}
    for c in codes:
        by_code[str(c)] = by_code.get(str(c), 0) + 1
    out: dict[str, Any] = {"requests": len(codes), "statuses": by_code}
    out["share_429"] = by_code.get("429", 0) / max(len(codes), 1)
    if latencies:
        out["p50_ms_200"] = search.percentile(latencies, 50) * 1000
        out["p95_ms_200"] = search.percentile(latencies, 95) * 1000
    return out


class Prober:
    """/readyz and /healthz every PROBE_EVERY s on a connection of its own."""

    def __init__(self, base: str, management: str) -> None:
        # What the chart probes: readiness on the management port, liveness on the API's.
        self.urls = {"/readyz": f"{management}/readyz", "/healthz": f"{base}/healthz"}
        self.checks = 0
        self.failures: list[str] = []
        self.worst_s = {"/readyz": 0.0, "/healthz": 0.0}
        self.times: list[float] = []
        self.streak = 0  # consecutive failed /readyz probes
        self.lost = 0  # times readiness would have been lost (FAILURE_THRESHOLD in a row)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        # A new connection per probe, as the kubelet's (it disables keep-alive): a
        # reused one can race the server closing it idle (a RemoteProtocolError the
        # kubelet never sees).
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, limits=no_reuse) as http:
            while not self._stop.is_set():
                for path in ("/readyz", "/healthz"):
                    t0 = time.perf_counter()
                    failure = None
                    try:
                        r = await http.get(self.urls[path])
                        if r.status_code != 200:
                            failure = f"{path} {r.status_code} {r.text[:100]}"
                    except httpx.HTTPError as exc:
                        failure = f"{path} {type(exc).__name__}"
                    took = time.perf_counter() - t0
                    # The kubelet's timeoutSeconds bounds the whole probe (httpx's
                    # timeout is per phase): slower than that is a failed probe.
                    if failure is None and took > PROBE_TIMEOUT:
                        failure = f"{path} took {took:.1f} s"
                    if failure is not None:
                        self.failures.append(failure)
                    self.worst_s[path] = max(self.worst_s[path], took)
                    if path == "/readyz":
                        self.times.append(took)
                        self.streak = self.streak + 1 if failure else 0
                        # The chart's failureThreshold: 3 failed probes in a row.
                        if self.streak == FAILURE_THRESHOLD:
                            self.lost += 1
                    self.checks += 1
                try:
                    await asyncio.wait_for(self._stop.wait(), PROBE_EVERY)
                except TimeoutError:
                    pass

    def stop(self) -> None:
        self._stop.set()


async def _one(http: httpx.AsyncClient, q: str, lat: list[float], codes: list[int]) -> int:
    t0 = time.perf_counter()
    try:
        r = await http.get("/search", params={"q": q, "limit": 10})
        code = r.status_code
    except httpx.HTTPError as exc:
        code = 0  # a transport error or client timeout
        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    if code == 200:
        lat.append(time.perf_counter() - t0)
    codes.append(code)
    return code


async def _load_test(
    base: str, management: str, queries: list[str], waves: int, seconds: float
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=CLIENTS + 10)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    # The prober is a process of its own, as the kubelet is: in this one its probes
    # would wait behind the 200 clients' coroutines on this event loop.
    ctx = multiprocessing.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    probing = ctx.Process(target=_probe_process, args=(base, management, stop, results))
    probing.start()
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=headers) as http:
        lat: list[float] = []
        codes: list[int] = []
        t0 = time.perf_counter()
        for w in range(waves):
            await asyncio.gather(
                *(_one(http, queries[(w * CLIENTS + i) % len(queries)], lat, codes)
                  for i in range(CLIENTS))
            )  # fmt: skip
        out["burst"] = {"waves": waves, "seconds": time.perf_counter() - t0,
                        **_summary(lat, codes)}  # fmt: skip

        lat, codes = [], []
        deadline = time.perf_counter() + seconds

        async def client(i: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                code = await _one(http, queries[(i * 7919 + n) % len(queries)], lat, codes)
                n += 1
                if code == 429:
                    await asyncio.sleep(1.0)  # Retry-After

        t0 = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
        took = time.perf_counter() - t0
        out["sustained"] = {"clients": CLIENTS, "seconds": took,
                            "answered_200_per_s": len(lat) / took, **_summary(lat, codes)}  # fmt: skip
    stop.set()
    out["readiness"] = await asyncio.to_thread(results.get, True, 60)
    probing.join(30)
    return out


def _probe_process(base: str, management: str, stop: Any, results: Any) -> None:
    prober = Prober(base, management)

    async def main() -> None:
        task = asyncio.create_task(prober.run())
        await asyncio.to_thread(stop.wait)  # a multiprocessing Event
        prober.stop()
        await task

    asyncio.run(main())
    results.put(
        {
            "checks": prober.checks,
            "failed_probes": len(prober.failures),
            "readiness_lost": prober.lost,
            "first_failures": prober.failures[:5],
            "readyz_p50_ms": search.percentile(prober.times, 50) * 1000,
            "readyz_p95_ms": search.percentile(prober.times, 95) * 1000,
            "slowest_ms": {path: s * 1000 for path, s in prober.worst_s.items()},
        }
    )


def _server_view(metrics_url: str) -> dict[str, Any]:
    """The server's own figures: refusals by reason, and p50/p95 of the admitted
    /search requests' time in the app (rap_search_request_seconds; interpolated within
    the bucket as Prometheus' histogram_quantile does) - without the time a request
    waited for the event loop to read it, which the client's latency includes."""
    text = httpx.get(metrics_url, timeout=10).text
    rejected: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith("rap_search_rejected_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            rejected[reason] = float(line.split()[-1])
        elif line.startswith("rap_search_request_seconds_bucket{") and 'route="/search"' in line:
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float(le), float(line.split()[-1])))
    buckets.sort()
    out: dict[str, Any] = {"rejected": rejected}
    total = buckets[-1][1] if buckets else 0.0
    for q in (50, 95):
        rank, low, below = total * q / 100, 0.0, 0.0
        for le, count in buckets:
            if count >= rank and total:
                if le == float("inf"):
                    out[f"search_in_app_p{q}_ms"] = f"> {low * 1000:g}"
                else:
                    share = (rank - below) / max(count - below, 1e-9)
                    out[f"search_in_app_p{q}_ms"] = (low + (le - low) * share) * 1000
                break
            low, below = le, count
    return out


def main(n: int, waves: int, seconds: float, max_in_flight: int | None = None) -> dict[str, Any]:
    from analyzer_runtime.embedding.model import Embedder

    vectors, took = corpus_vectors(n, Embedder.load())
    queries = [head(t.lyrics) for t in generate_tracks(500, start=n + 1000)]
    result: dict[str, Any] = {"tracks": n, "vectors_s": took}
    with tempfile.TemporaryDirectory(prefix="rap-search-load-") as tmp:
        env = {**os.environ, "RAP_ANALYZER_DATA_DIR": tmp}
        env.pop("DATABASE_URL", None)
        url = subprocess.run(
            [*CLI, "db", "start"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        port, metrics_port = _free_port(), _free_port()
        serve_env = {
            **env,
            "DATABASE_URL": url,
            "METRICS_PORT": "0",
            "RAP_SEARCH_TOKEN": TOKEN,
            "RAP_SEARCH_METRICS_PORT": str(metrics_port),
        }
        if max_in_flight is not None:
            serve_env["RAP_SEARCH_MAX_IN_FLIGHT"] = str(max_in_flight)
        result["max_in_flight"] = max_in_flight or 32
        log = open(Path(tmp) / "serve.log", "w+")
        server = None
        try:
            result["load"] = asyncio.run(_load(url, n, vectors))
            server = subprocess.Popen(
                [*CLI, "serve", "--port", str(port)],
                env=serve_env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"serve exited: {log.read()[-2000:]}")
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("serve not ready in 120 s")
                time.sleep(0.2)
            management = f"http://127.0.0.1:{metrics_port}"
            result.update(asyncio.run(_load_test(base, management, queries, waves, seconds)))
            result["server"] = _server_view(f"{management}/metrics")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            log.close()
            subprocess.run([*CLI, "db", "stop"], env=env, capture_output=True, check=False)
    result["client_errors"] = errors
    result["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    result["date"] = time.strftime("%Y-%m-%d")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=5000)
    parser.add_argument("--waves", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-in-flight", type=int, help="the server's limit (default 32)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    res = main(args.tracks, args.waves, args.seconds, args.max_in_flight)
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if res["readiness"]["readiness_lost"]:
        sys.exit("readiness failed under load (the goal is none)")
