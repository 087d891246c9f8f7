"""containerd for the real node: its own root, state and socket, started in
the node's network namespace; images imported, never pulled; and a teardown
that leaves no container, mount or pod network namespace behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

from rap_devtools.procs import ManagedProcess
from rap_devtools.realnode.configs import NodePaths, cni_conflist, containerd_config
from rap_devtools.realnode.network import NodeNetwork
from rap_devtools.waiting import poll, wait_for

K8S_NAMESPACE = "k8s.io"  # containerd's namespace for the CRI's images and containers


class Containerd:
    def __init__(self, paths: NodePaths, network: NodeNetwork, log_dir: Path) -> None:
        self.paths = paths
        self.network = network
        self.process = ManagedProcess(
            "containerd",
            [*network.nsenter(), "containerd", f"--config={paths.containerd_config}"],
            log_dir / "containerd.log",
        )

    def write_config(self) -> None:
        self.paths.containerd_config.parent.mkdir(parents=True, exist_ok=True)
        self.paths.containerd_config.write_text(containerd_config(self.paths))
        self.paths.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (self.paths.cni_conf_dir / "10-rap-node.conflist").write_text(cni_conflist(self.paths))

    def start(self, timeout: float = 30.0) -> None:
        self.write_config()
        self.process.start()
        wait_for(
            lambda: self._answers(),
            timeout=timeout,
            what="containerd to answer on its socket",
            describe=lambda: self.process.log_tail(20),
        )

    def _answers(self) -> bool:
        if not self.process.running():
            raise RuntimeError(f"containerd exited:\n{self.process.log_tail(30)}")
        return self.ctr("version", check=False).returncode == 0

    def ctr(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [
                "ctr",
                f"--address={self.paths.containerd_socket}",
                f"--namespace={K8S_NAMESPACE}",
                *args,
            ],
            input=input,
            capture_output=True,
            check=check,
        )

    def import_archive(self, archive: Path) -> None:
        """Import a docker-save or OCI archive, unpacked for the CRI's snapshotter."""
        result = self.ctr("images", "import", "--digests", "--snapshotter=overlayfs",
                          str(archive), check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"ctr import {archive} failed: {result.stderr.decode()[-2000:]}")

    def import_docker_images(self, images: Iterable[str]) -> None:
        import_docker_images(self.paths.containerd_socket, images)

    def image_names(self) -> set[str]:
        out = self.ctr("images", "list", "--quiet", check=False).stdout.decode()
        return set(out.split())

    # -- teardown --------------------------------------------------------------

    def runc_ids(self) -> list[str]:
        root = self.paths.runc_root / K8S_NAMESPACE
        if not root.is_dir():
            return []
        out = subprocess.run(["runc", f"--root={root}", "list", "-q"],
                             capture_output=True, text=True)  # fmt: skip
        return out.stdout.split()

    def kill_containers(self) -> None:
        """Kill every container of this node (sandboxes included) through runc:
        containerd's shims outlive containerd, and so would the containers."""
        root = self.paths.runc_root / K8S_NAMESPACE
        for cid in self.runc_ids():
            subprocess.run(["runc", f"--root={root}", "kill", "--all", cid, "KILL"],
                           capture_output=True)  # fmt: skip
        poll(lambda: "running" not in subprocess.run(["runc", f"--root={root}", "list"],
                                                     capture_output=True, text=True).stdout,
             timeout=10, interval=0.1)  # fmt: skip
        for cid in self.runc_ids():
            subprocess.run(["runc", f"--root={root}", "delete", "--force", cid],
                           capture_output=True)  # fmt: skip

    def kill_shims(self) -> None:
        sock = str(self.paths.containerd_socket)
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
                if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and sock.encode() in cmd:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(proc.name), signal.SIGKILL)

    def stop(self) -> None:
        self.kill_containers()
        self.process.stop(grace=10.0)
        self.kill_shims()
        unmount_under(self.paths.root)


def unmount_under(root: Path) -> None:
    """Unmount (lazily, deepest first) everything mounted under ``root``:
    container rootfs overlays, the kubelet's Secret and token tmpfs mounts,
    pod network namespace handles."""
    prefix = str(root.resolve()) + "/"
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point.startswith(prefix):
                mounts.append(mount_point)
    for mount_point in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], capture_output=True)


def import_docker_images(socket: Path, images: Iterable[str]) -> None:
    """`docker save IMAGES | ctr images import -`: how kind loads images too."""
    images = list(images)
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    assert save.stdout is not None
    result = subprocess.run(
        [
            "ctr",
            f"--address={socket}",
            f"--namespace={K8S_NAMESPACE}",
            "images",
            "import",
            "--digests",
            "--snapshotter=overlayfs",
            "-",
        ],
        stdin=save.stdout,
        capture_output=True,
    )
    save.stdout.close()
    if save.wait() != 0 or result.returncode != 0:
        raise RuntimeError(
            f"loading {images} into containerd failed (docker save rc={save.returncode}): "
            f"{result.stderr.decode()[-2000:]}"
        )
