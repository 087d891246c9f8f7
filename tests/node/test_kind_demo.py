"""`make kind-demo` as a test: on a kind cluster made from the node image built
here (`make kind-node-image`), the chart installs with its Postgres, whose PVC
the local-path provisioner binds, and the example run succeeds with every
selected track analyzed exactly once. Also what any workload on this kind
needs: pods reach each other across the bridge CNI and Service names resolve."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from rap_devtools import chart_demo
from rap_devtools import kind as kindmod
from rap_devtools.kind import KindCluster
from rap_devtools.waiting import wait_for

NS = chart_demo.NAMESPACE
RUN = "algorithmic-demo"  # examples/analysisrun.yaml
TRACKS = 3000


@pytest.fixture(scope="module")
def demo(kind_cluster: KindCluster) -> Iterator[dict[str, float | str]]:
    # The images were loaded by the kind_cluster fixture.
    times = kindmod.demo(kind_cluster, tracks=TRACKS, load=False)
    yield times
    chart_demo.uninstall(kind_cluster, NS)
    kind_cluster.kubectl("delete", "ns", NS, "--wait", timeout=180)


def kubectl_json(c: KindCluster, *args: str) -> dict:
    return json.loads(c.kubectl(*args, "-o", "json", check=True, timeout=120).stdout)


def psql(c: KindCluster, sql: str) -> str:
    return chart_demo.psql(c, sql, NS)


def test_the_node_runs_the_kubernetes_built_here(kind_cluster: KindCluster) -> None:
    (node,) = kubectl_json(kind_cluster, "get", "nodes")["items"]
    assert node["metadata"]["name"] == kind_cluster.node_container
    assert node["status"]["nodeInfo"]["kubeletVersion"] == kindmod.K8S_VERSION
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"


def test_example_run_succeeds_exactly_once(kind_cluster: KindCluster, demo: dict) -> None:
    assert demo["phase"] == "Succeeded", kind_cluster.kubectl(
        "-n", NS, "get", "analysisrun", RUN, "-o", "yaml").stdout  # fmt: skip
    status = kubectl_json(kind_cluster, "-n", NS, "get", "analysisrun", RUN)["status"]
    # onlyMissing over a fresh corpus: every seeded track is selected.
    assert status["total"] == TRACKS, status
    total, distinct = psql(kind_cluster,
        "SELECT count(*), count(DISTINCT track_id) FROM analysis_results "
        "WHERE analyzer_type = 'algorithmic'").split("|")  # fmt: skip
    assert int(total) == int(distinct) == status["total"]


def test_postgres_pvc_is_bound_by_the_local_path_provisioner(
    kind_cluster: KindCluster, demo: dict
) -> None:
    sc = kubectl_json(kind_cluster, "get", "storageclass", kindmod.STORAGE_CLASS)
    assert sc["provisioner"] == kindmod.PROVISIONER
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    pvcs = [p for p in kubectl_json(kind_cluster, "-n", NS, "get", "pvc")["items"]
            if p["metadata"]["name"].endswith("rap-analyzer-postgres-0")]  # fmt: skip
    assert len(pvcs) == 1, [p["metadata"]["name"] for p in pvcs]
    (pvc,) = pvcs
    # The chart sets no class: the default one took it.
    assert pvc["spec"]["storageClassName"] == kindmod.STORAGE_CLASS
    assert pvc["status"]["phase"] == "Bound"
    pv = kubectl_json(kind_cluster, "get", "pv", pvc["spec"]["volumeName"])
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == kindmod.PROVISIONER
    # A directory under the node's /var (kind's provisioner config), not a tmpfs.
    path = pv["spec"]["hostPath"]["path"]
    assert path.startswith("/var/local-path-provisioner/"), path
    assert kind_cluster.node_exec("test", "-d", path, check=False).returncode == 0


def test_pods_reach_each_other_and_dns_resolves(kind_cluster: KindCluster) -> None:
    ns = "kind-net-probe"
    server = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "server", "namespace": ns, "labels": {"app": "server"}},
              "spec": {"containers": [{
                  "name": "s", "image": "rap-analyzer:dev", "imagePullPolicy": "Never",
                  "command": ["python", "-m", "http.server", "8080"],
                  "ports": [{"containerPort": 8080}],
                  "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}  # fmt: skip
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "server", "namespace": ns},
               "spec": {"selector": {"app": "server"},
                        "ports": [{"port": 80, "targetPort": 8080}]}}  # fmt: skip
    kind_cluster.kubectl("create", "ns", ns, check=True)
    try:
        kind_cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [server, service]}), check=True)  # fmt: skip
        kind_cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/server",
                             "--timeout=120s", check=True, timeout=150)  # fmt: skip
        pod_ip = kubectl_json(kind_cluster, "-n", ns, "get", "pod", "server")["status"]["podIP"]
        # Another pod: the server's pod IP directly (the bridge), then the
        # Service by its DNS name (CoreDNS, kube-proxy).
        probe = ("import socket, urllib.request as u, sys\n"
                 "ip = socket.gethostbyname('server.kind-net-probe.svc.cluster.local')\n"
                 f"a = u.urlopen('http://{pod_ip}:8080/', timeout=5).status\n"
                 "b = u.urlopen('http://server.kind-net-probe/', timeout=5).status\n"
                 "print(ip, a, b)")  # fmt: skip
        client = {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "client", "namespace": ns},
                  "spec": {"restartPolicy": "Never", "containers": [{
                      "name": "c", "image": "rap-analyzer:dev", "imagePullPolicy": "Never",
                      "command": ["python", "-c", probe]}]}}  # fmt: skip
        kind_cluster.kubectl("apply", "-f", "-", input=json.dumps(client), check=True)
        phase = wait_for(
            lambda: kubectl_json(kind_cluster, "-n", ns, "get", "pod", "client")["status"].get(
                "phase") in ("Succeeded", "Failed")
            and kubectl_json(kind_cluster, "-n", ns, "get", "pod", "client")["status"]["phase"],
            timeout=120, interval=1.0, what="the client pod to finish",
        )  # fmt: skip
        log = kind_cluster.kubectl("-n", ns, "logs", "client").stdout
        assert phase == "Succeeded", log
        cluster_ip = kubectl_json(kind_cluster, "-n", ns, "get", "svc", "server")["spec"][
            "clusterIP"]  # fmt: skip
        assert log.split() == [cluster_ip, "200", "200"]
    finally:
        kind_cluster.kubectl("delete", "ns", ns, "--wait=false")


def test_a_serviceaccount_kubeconfig_is_that_serviceaccount(kind_cluster: KindCluster) -> None:
    """ClusterAccess.make_kubeconfig_for_serviceaccount on kind (the CA comes
    from kind's kubeconfig): its RBAC applies, not the admin's."""
    ns = "kind-sa-probe"
    kind_cluster.kubectl("create", "ns", ns, check=True)
    try:
        kind_cluster.kubectl("-n", ns, "create", "serviceaccount", "probe", check=True)
        kc = kind_cluster.make_kubeconfig_for_serviceaccount(ns, "probe")
        who = kind_cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=kc, check=True)
        assert json.loads(who.stdout)["status"]["userInfo"]["username"] == (
            f"system:serviceaccount:{ns}:probe")  # fmt: skip
        denied = kind_cluster.kubectl("-n", "kube-system", "get", "pods", kubeconfig=kc)
        assert denied.returncode != 0 and "forbidden" in denied.stderr
    finally:
        kind_cluster.kubectl("delete", "ns", ns, "--wait=false")
