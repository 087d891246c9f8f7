"""`make operator-up`, `make operator-down`, `make cluster-demo`: the operator on the
local cluster started by `make cluster-up`, with the embedded Postgres.

    python -m rap_devtools.demo operator-up [--tracks 3000]
    python -m rap_devtools.demo operator-down
    python -m rap_devtools.demo cluster-demo

Files (beside the cluster's, under .cluster/): operator.log, operator.pid, data/
(the embedded Postgres), kubeconfig-operator (the chart's ServiceAccount)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from rap_devtools.cluster import REPO_ROOT
from rap_devtools.kubeapi import KubeApi
from rap_devtools.operator_setup import (
    OPERATOR_NS,
    OperatorProcess,
    install_crds,
    install_operator_rbac,
    kubectl,
    put_db_secret,
    serviceaccount_kubeconfig,
)
from rap_devtools.procs import pid_alive, terminate_group
from rap_devtools.waiting import poll

WORKDIR = REPO_ROOT / ".cluster"
DEMO_NS = "default"


def _cli(*args: str) -> str:
    """`rap-analyzer` with its embedded Postgres kept under .cluster/data."""
    env = {**os.environ, "RAP_ANALYZER_DATA_DIR": str(WORKDIR / "data")}
    env.pop("DATABASE_URL", None)
    res = subprocess.run(
        [sys.executable, "-m", "analyzer_runtime", *args], env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        raise SystemExit(f"rap-analyzer {' '.join(args)} failed:\n{res.stderr}")
    return res.stdout.strip()


def operator_up(tracks: int) -> None:
    admin = WORKDIR / "kubeconfig"
    if not (WORKDIR / "ready").exists():
        raise SystemExit("no local cluster: run `make cluster-up` first")
    if _operator_pid():
        print("operator already running; `make operator-down` stops it")
        return
    url = _cli("db", "start")
    _cli("db", "migrate")
    print(_cli("seed", str(tracks)))
    install_crds(admin)
    kube = KubeApi(admin)
    try:
        sa = install_operator_rbac(admin, kube)
        put_db_secret(kube, DEMO_NS, url)
    finally:
        kube.close()
    sa_config = serviceaccount_kubeconfig(admin, OPERATOR_NS, sa, WORKDIR / "kubeconfig-operator")
    op = OperatorProcess(sa_config, WORKDIR / "operator.log", interval=1.0)
    op.start()
    (WORKDIR / "operator.pid").write_text(str(op.pid))
    print(
        f"operator running as ServiceAccount {OPERATOR_NS}/{sa} (pid {op.pid}), log: .cluster/operator.log"
    )


def _operator_pid() -> int | None:
    try:
        pid = int((WORKDIR / "operator.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def operator_down() -> None:
    if pid := _operator_pid():
        terminate_group(pid, grace=20.0)
        print(f"operator (pid {pid}) stopped")
    (WORKDIR / "operator.pid").unlink(missing_ok=True)
    if (WORKDIR / "data").exists():
        _cli("db", "stop")


def cluster_demo() -> None:
    operator_up(3000)
    admin = WORKDIR / "kubeconfig"
    kubectl(admin, "delete", "-n", DEMO_NS, "-f", str(REPO_ROOT / "examples/analysisrun.yaml"),
            "--ignore-not-found", "--wait")  # fmt: skip
    res = kubectl(admin, "apply", "-n", DEMO_NS, "-f", str(REPO_ROOT / "examples/analysisrun.yaml"))
    print(res.stdout or res.stderr, end="")
    print(f"$ kubectl --kubeconfig .cluster/kubeconfig get analysisruns -n {DEMO_NS} -w")
    watch = subprocess.Popen(
        [str(REPO_ROOT / "bin/kubectl"), f"--kubeconfig={admin}", "get", "analysisruns",
         "-n", DEMO_NS, "-w"],
    )  # fmt: skip

    def final() -> bool:
        got = kubectl(admin, "get", "analysisrun", "algorithmic-demo", "-n", DEMO_NS, "-o", "json")
        phase = json.loads(got.stdout or "{}").get("status", {}).get("phase")
        return phase in ("Succeeded", "Failed")

    try:
        poll(final, timeout=600, interval=0.5)  # then described, whatever it reached
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    print(kubectl(admin, "describe", "analysisrun", "algorithmic-demo", "-n", DEMO_NS).stdout)
    print("The cluster and operator keep running: `make cluster-down` stops everything.")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m rap_devtools.demo")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("operator-up")
    up.add_argument("--tracks", type=int, default=3000)
    sub.add_parser("operator-down")
    sub.add_parser("cluster-demo")
    args = parser.parse_args(argv)
    if args.cmd == "operator-up":
        operator_up(args.tracks)
    elif args.cmd == "operator-down":
        operator_down()
    else:
        cluster_demo()


if __name__ == "__main__":
    main(sys.argv[1:])
