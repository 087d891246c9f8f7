"""A process kubelet: test infrastructure that runs pods as local processes.

It registers one Node and keeps it Ready (node status + a Lease), binds
unscheduled pods to it (there is no scheduler), and runs each pod's single
container command as a subprocess: the image is ignored; command, args,
workingDir and env (see kubelet_env) are honoured. Status goes through
``pods/status`` like the real kubelet's: Running, then Succeeded/Failed with
``containerStatuses[].state.terminated.exitCode``. Deleting a pod sends
SIGTERM, then SIGKILL after the grace period.

Per pod, under ``log_dir``: ``<ns>_<name>.log`` (stdout+stderr) and, while it
runs, ``<ns>_<name>.pid`` (the process-group leader, for tests that kill a
shard on purpose).

Threads: one watch thread feeds pod events into a queue; ONE worker thread
owns all state and is the only one that spawns processes (so the per-child
"die with the parent" signal is tied to a long-lived thread); a waiter
thread per process reports its exit back to the worker; a heartbeat thread
renews the Lease.

Run it alone with ``python -m rap_devtools.kubelet --kubeconfig K --log-dir D``.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rap_devtools import kubelet_env as kenv
from rap_devtools import kubelet_status as ks
from rap_devtools.kubeapi import ApiError, KubeApi
from rap_devtools.kubelet_node import NodeAgent, now_rfc3339
from rap_devtools.procs import die_with_parent_preexec, pid_alive, terminate_group

log = logging.getLogger("rap_devtools.kubelet")
JSON = dict[str, Any]
DEFAULT_NODE = "rap-local-node"


def pod_file(log_dir: Path, namespace: str, name: str, suffix: str) -> Path:
    return Path(log_dir) / f"{namespace}_{name}.{suffix}"


def pod_log_path(log_dir: Path, namespace: str, name: str) -> Path:
    return pod_file(log_dir, namespace, name, "log")


def read_pid(log_dir: Path, namespace: str, name: str) -> int | None:
    """PID of a pod's running process (from its pidfile), None if not running."""
    try:
        pid = int(pod_file(log_dir, namespace, name, "pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


class ProcessKubelet:
    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        *,
        node_name: str = DEFAULT_NODE,
        max_pods: int = 8,
        heartbeat_seconds: float = 10.0,
        path_first: Path | None = None,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.log_dir = Path(log_dir)
        self.node_name = node_name
        self.max_pods = max_pods
        self.api = KubeApi(self.kubeconfig)
        self.node = NodeAgent(self.api, node_name, max_pods, heartbeat_seconds)
        self.env = kenv.EnvResolver(self.api, self.node.allocatable)
        self.path_first = str(path_first or Path(sys.executable).parent)
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Worker-thread state (no locks: only the worker touches it).
        self._pods: dict[str, JSON] = {}  # uid -> latest object
        self._runs: dict[str, ks.PodRun] = {}
        self._reserved: set[str] = set()  # bound by us, not started yet
        self._retry_at: dict[str, float] = {}  # uid -> when to retry env resolution
        self._deleted: set[str] = set()  # uids we finished deleting

    # -- public ------------------------------------------------------------------

    def pod_log_path(self, namespace: str, name: str) -> Path:
        return pod_log_path(self.log_dir, namespace, name)

    def pid_of(self, namespace: str, name: str) -> int | None:
        return read_pid(self.log_dir, namespace, name)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.node.register()
        for target, name in (
            (self._watch_loop, "watch"),
            (self._work_loop, "worker"),
            (self.node.heartbeat_loop, "heartbeat"),
        ):
            args = (self._stop,) if target == self.node.heartbeat_loop else ()
            t = threading.Thread(target=target, args=args, name=f"kubelet-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, grace: float = 3.0) -> None:
        """Stop the loops, then kill every pod process (no status reported:
        the API server is usually going away at the same time)."""
        self._stop.set()
        for t in self._threads:
            if t.name == "kubelet-worker":
                t.join(timeout=10)
        runs = [(r, r.proc) for r in self._runs.values() if r.proc and r.proc.poll() is None]
        killers = [threading.Thread(target=terminate_group, args=(p.pid, grace)) for _, p in runs]
        for k in killers:
            k.start()
        for k in killers:
            k.join()
        for r, _ in runs:
            pod_file(self.log_dir, r.namespace, r.name, "pid").unlink(missing_ok=True)
        self.api.close()

    def run_forever(self) -> None:
        self.start()
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        self._stop.wait()
        self.stop()

    # -- watch -----------------------------------------------------------------

    def _watch_loop(self) -> None:
        rv: str | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                if rv is None:
                    lst = self.api.get("/api/v1/pods")
                    rv = lst["metadata"]["resourceVersion"]
                    self._events.put(("relist", lst.get("items") or []))
                for ev in self.api.watch("/api/v1/pods", rv, timeout_seconds=30):
                    if self._stop.is_set():
                        return
                    obj = ev.get("object") or {}
                    if ev["type"] == "ERROR":
                        # 410 Gone: our resourceVersion was compacted; relist.
                        log.info("watch error %s, relisting", obj.get("code"))
                        rv = None
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] != "BOOKMARK":
                        self._events.put(("pod", (ev["type"], obj)))
                failures = 0
            except ApiError as e:
                rv = None if e.status == 410 else rv
                failures += 1
            except Exception as e:  # connection reset, apiserver restarting, ...
                log.debug("watch failed: %s", e)
                failures += 1
            if failures:
                if failures > 3:
                    rv = None  # something is off; start from a fresh list
                self._stop.wait(min(0.2 * 2**failures, 5.0))

    # -- worker ----------------------------------------------------------------

    def _work_loop(self) -> None:
        last_sync = 0.0
        while not self._stop.is_set():
            try:
                kind, payload = self._events.get(timeout=0.5)
            except queue.Empty:
                kind, payload = "tick", None
            try:
                self._dispatch(kind, payload)
                if time.monotonic() - last_sync > 1.0 or kind in ("exited", "relist"):
                    self._sync_waiting()
                    last_sync = time.monotonic()
            except Exception:
                log.exception("kubelet worker error on %s", kind)

    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "relist":
            items = {p["metadata"]["uid"]: p for p in payload}
            for uid in set(self._pods) - set(items):
                self._on_deleted(self._pods.pop(uid))
            self._pods = items
            for pod in items.values():
                self._on_pod(pod)
        elif kind == "pod":
            etype, pod = payload
            uid = pod["metadata"]["uid"]
            if etype == "DELETED":
                self._pods.pop(uid, None)
                self._on_deleted(pod)
            else:
                self._pods[uid] = pod
                self._on_pod(pod)
        elif kind == "exited":
            self._on_exited(*payload)

    def _busy(self) -> int:
        live = sum(1 for r in self._runs.values() if not r.exited)
        return live + len(self._reserved)

    def _sync_waiting(self) -> None:
        """Re-examine pods that wait for a free slot or an env retry, oldest first."""
        waiting = [
            p
            for uid, p in self._pods.items()
            if (uid not in self._runs or self._runs[uid].restart_pending)
            and not p["metadata"].get("deletionTimestamp")
        ]
        waiting.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""))
        for pod in waiting:
            self._on_pod(pod)

    def _on_pod(self, pod: JSON) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        uid, node = meta["uid"], spec.get("nodeName")
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if not node:
            if phase == "Pending" and not meta.get("deletionTimestamp"):
                self._maybe_bind(pod)
            return
        if node != self.node_name:
            return
        self._reserved.discard(uid)
        run = self._runs.get(uid)
        if meta.get("deletionTimestamp"):
            if run and not run.exited:
                self._terminate(run, pod)
            elif uid not in self._deleted:
                self._finish_deletion(pod)
            return
        if (run and not run.restart_pending) or phase in ("Succeeded", "Failed"):
            return
        if phase == "Running" and run is None:
            # Running without a process: we restarted and lost it. Say so the
            # way the kubelet does when container state is lost.
            self._report_lost(pod)
            return
        if self._retry_at.get(uid, 0) > time.monotonic():
            return
        if self._busy() >= self.max_pods:
            return
        self._start_pod(pod)

    def _maybe_bind(self, pod: JSON) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return
        if meta["uid"] in self._reserved or self._busy() >= self.max_pods:
            return
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            self.api.post(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", binding
            )
            self._reserved.add(meta["uid"])
            log.info("bound %s/%s", meta["namespace"], meta["name"])
        except ApiError as e:
            # 409: someone bound it first; 404: gone. Either way not ours now.
            log.debug("bind %s/%s: %s", meta["namespace"], meta["name"], e)

    # -- running pods ----------------------------------------------------------

    def _start_pod(self, pod: JSON) -> None:
        meta = pod["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        container = pod["spec"]["containers"][0]
        run = self._runs.get(uid) or ks.PodRun(uid, ns, name, container)
        try:
            env = self.env.resolve(pod, container, kenv.base_environment(name, self.path_first))
            argv = kenv.command_line(container, env)
        except kenv.EnvError as e:
            self._retry_at[uid] = time.monotonic() + 2.0
            self._patch_waiting(pod, "CreateContainerConfigError", str(e))
            return
        cwd = container.get("workingDir") or None
        self._retry_at.pop(uid, None)
        self._runs[uid] = run
        log_path = pod_log_path(self.log_dir, ns, name)
        try:
            if cwd:
                Path(cwd).mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as out:
                run.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                    close_fds=True,
                    preexec_fn=die_with_parent_preexec,
                )
        except OSError as e:
            # containerd reports an exec failure as exit 128, reason StartError.
            with open(log_path, "ab") as out:
                out.write(f"process kubelet: cannot start {argv!r}: {e}\n".encode())
            run.started_at = now_rfc3339()
            run.exited = True
            self._report_terminated(pod, run, 128, "StartError", str(e))
            return
        pod_file(self.log_dir, ns, name, "pid").write_text(f"{run.proc.pid}\n")
        log.info("started %s/%s pid %d: %s", ns, name, run.proc.pid, argv)
        run.started_at = now_rfc3339()
        run.exited = run.restart_pending = False
        threading.Thread(
            target=self._wait_process, args=(uid, run.proc), name=f"wait-{name}", daemon=True
        ).start()
        self._patch_status(pod, ks.running_status(pod, run))

    def _wait_process(self, uid: str, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        self._events.put(("exited", (uid, proc.pid, code)))

    def _on_exited(self, uid: str, pid: int, code: int) -> None:
        run = self._runs.get(uid)
        if run is None or run.proc is None or run.proc.pid != pid:
            return
        run.exited = True
        pod_file(self.log_dir, run.namespace, run.name, "pid").unlink(missing_ok=True)
        # Popen reports death by signal N as -N; a container runtime says 128+N.
        exit_code = 128 - code if code < 0 else code
        log.info("%s/%s pid %d exited with %d", run.namespace, run.name, pid, exit_code)
        pod = self._pods.get(uid)
        if pod is None:
            return  # deleted outright while running
        policy = pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
        if restart and not run.terminating and not pod["metadata"].get("deletionTimestamp"):
            # CrashLoopBackOff, compressed: 1 s doubling up to 10 s.
            run.last_state = {"terminated": ks.terminated_state(run, exit_code)}
            run.restart_count += 1
            run.restart_pending = True
            self._retry_at[uid] = time.monotonic() + min(2.0**run.restart_count / 2, 10.0)
            return
        self._report_terminated(pod, run, exit_code, "Completed" if exit_code == 0 else "Error")
        if run.terminating or pod["metadata"].get("deletionTimestamp"):
            self._finish_deletion(pod)

    def _terminate(self, run: ks.PodRun, pod: JSON) -> None:
        if run.terminating or run.proc is None:
            return
        run.terminating = True
        log.info("terminating %s/%s pid %d", run.namespace, run.name, run.proc.pid)
        meta, spec = pod["metadata"], pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        threading.Thread(
            target=terminate_group,
            args=(run.proc.pid, max(float(grace), 0.5)),
            name=f"kill-{run.name}",
            daemon=True,
        ).start()

    def _on_deleted(self, pod: JSON) -> None:
        uid = pod["metadata"]["uid"]
        self._reserved.discard(uid)
        self._retry_at.pop(uid, None)
        self._deleted.discard(uid)
        run = self._runs.get(uid)
        if run and not run.exited:
            self._terminate(run, pod)
        elif run:
            self._runs.pop(uid)

    def _finish_deletion(self, pod: JSON) -> None:
        """What the kubelet does once containers are gone: delete with grace 0
        (finalizers such as the Job controller's may keep the object a bit)."""
        meta = pod["metadata"]
        self._deleted.add(meta["uid"])
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            self.api.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body)
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("deleting %s/%s: %s", meta["namespace"], meta["name"], e)

    # -- status ----------------------------------------------------------------

    def _report_terminated(
        self, pod: JSON, run: ks.PodRun, exit_code: int, reason: str, message: str = ""
    ) -> None:
        state = {"terminated": ks.terminated_state(run, exit_code, reason, message)}
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "hostIP": kenv.HOST_IP,
            "podIP": kenv.HOST_IP,
            "startTime": (pod.get("status") or {}).get("startTime") or run.started_at,
            "conditions": ks.conditions(False, "PodCompleted"),
            "containerStatuses": [ks.container_status(run, state, False)],
        }
        self._patch_status(pod, status)

    def _report_lost(self, pod: JSON) -> None:
        meta = pod["metadata"]
        run = ks.PodRun(meta["uid"], meta["namespace"], meta["name"], pod["spec"]["containers"][0])
        run.exited = True
        self._runs[run.uid] = run
        msg = "The container could not be located when the pod was terminated"
        self._report_terminated(pod, run, 137, "ContainerStatusUnknown", msg)

    def _patch_waiting(self, pod: JSON, reason: str, message: str) -> None:
        meta = pod["metadata"]
        run = ks.PodRun(meta["uid"], meta["namespace"], meta["name"], pod["spec"]["containers"][0])
        state = {"waiting": {"reason": reason, "message": message}}
        status = {
            "hostIP": kenv.HOST_IP,
            "conditions": ks.conditions(False, "ContainersNotReady"),
            "containerStatuses": [ks.container_status(run, state, False)],
        }
        self._patch_status(pod, status)

    def _patch_status(self, pod: JSON, status: JSON) -> None:
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        try:
            # containerStatuses has no merge key, so the list is replaced as a
            # whole; conditions merge by type.
            self.api.patch(path, {"metadata": {"uid": meta["uid"]}, "status": status})
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("status of %s/%s: %s", meta["namespace"], meta["name"], e)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rap_devtools.kubelet", description=__doc__)
    ap.add_argument("--kubeconfig", type=Path, required=True)
    ap.add_argument("--log-dir", type=Path, required=True)
    ap.add_argument("--node-name", default=DEFAULT_NODE)
    ap.add_argument("--max-pods", type=int, default=int(os.environ.get("RAP_KUBELET_MAX_PODS", 8)))
    ap.add_argument("--ready-file", type=Path, help="touched once the Node is registered")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    kubelet = ProcessKubelet(
        args.kubeconfig, args.log_dir, node_name=args.node_name, max_pods=args.max_pods
    )
    if args.ready_file:
        kubelet.node.on_registered = lambda: args.ready_file.touch()
    kubelet.run_forever()


if __name__ == "__main__":
    main()
