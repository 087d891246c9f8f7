"""Child-process plumbing shared by the control plane, kubelet and CLI.

Every long-running child gets its own session (process group), so stopping
it also stops whatever it forked, and the teardown can signal the group even
when only a PID survives in a pidfile.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from rap_devtools.waiting import poll

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # Field 3 of /proc/PID/stat is the state; a zombie is dead for us.
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot). With the PID it
    identifies a process, so a PID the kernel reuses is not mistaken for it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def survivors(identities: dict[int, str | None]) -> list[int]:
    """PIDs from ``{pid: start_time(pid)}`` that still run as the same process."""
    return [pid for pid, t in identities.items() if start_time(pid) == t and pid_alive(pid)]


OWNER_FILE = "owner.pid"


def make_owned_tempdir(prefix: str) -> Path:
    """A temp dir that records which process owns it (see sweep_stale_tempdirs)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    (path / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return path


def sweep_stale_tempdirs(prefix: str) -> None:
    """Remove temp dirs of earlier runs whose owner died without cleaning up
    (kill -9, a crashed CI job): a normal stop() deletes its own."""
    for d in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            pid = int((d / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if not pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def die_with_parent_preexec() -> None:
    """preexec_fn: SIGKILL this child when the parent dies (e.g. pytest -9).

    Without it a crashed test run leaves etcd and the apiserver running for
    ever. Linux only; elsewhere it is silently skipped.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def signal_group(pid: int, sig: int) -> bool:
    """Signal the process group led by ``pid``; False when the group is gone.

    Every process we start leads its own session, so the group id is its
    PID; never fall back to signalling a bare PID, which may have been reused.
    """
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    return poll(lambda: not pid_alive(pid), timeout=timeout, interval=0.05) is not None


def terminate_group(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the group, then SIGKILL it after ``grace`` seconds."""
    if not signal_group(pid, signal.SIGTERM):
        return
    if not wait_gone(pid, grace):
        signal_group(pid, signal.SIGKILL)
        wait_gone(pid, 5.0)
    # Stragglers in the group (children that ignored SIGTERM) go too.
    signal_group(pid, signal.SIGKILL)


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """Stop a child that leads its own process group: SIGTERM, SIGKILL after
    ``grace`` seconds, then reap it."""
    if proc is None or proc.poll() is not None:
        return
    terminate_group(proc.pid, grace)
    proc.wait(timeout=10)


class ManagedProcess:
    """One child process in its own session, output appended to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.die_with_parent = die_with_parent
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # one log per run, not a pile-up
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
                preexec_fn=die_with_parent_preexec if self._tie_to_parent() else None,
            )

    def _tie_to_parent(self) -> bool:
        # PDEATHSIG fires when the *thread* that forked exits, not the
        # process: started from a short-lived thread (asyncio.to_thread, an
        # executor) the child would be killed at once. Only tie it to the
        # main thread, which lives as long as the process.
        return self.die_with_parent and threading.current_thread() is threading.main_thread()

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            terminate_group(self.popen.pid, grace)
        else:
            signal_group(self.popen.pid, signal.SIGKILL)  # orphans left in the group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
