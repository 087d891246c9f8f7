"""The embedded default database: a real PostgreSQL 16 + pgvector from the `pgserver` package.

It listens on a unix socket inside its data directory only, so it never clashes
with another Postgres on the machine and needs no password. `pgserver` (and
`platformdirs`) come with the `local` extra and are imported only when a server
is wanted: the image (runtime + operator) has neither and always uses DATABASE_URL.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from analyzer_runtime.contract import env

DATA_DIR_ENV = "RAP_ANALYZER_DATA_DIR"
MISSING = (
    "the embedded Postgres needs `pip install 'rap-analyzer[local]'`;"
    " or set DATABASE_URL to a PostgreSQL server with pgvector"
)


class EmbeddedUnavailable(RuntimeError):
    """The embedded server's packages (the `local` extra) are not installed."""


def _require_local() -> None:
    """Raise EmbeddedUnavailable (one actionable line) unless the `local` extra is installed."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            import pgserver  # noqa: F401
            import platformdirs  # noqa: F401
    except ImportError as exc:
        raise EmbeddedUnavailable(f"{MISSING} ({exc})") from None


def data_dir() -> Path:
    """`$RAP_ANALYZER_DATA_DIR` or the user's data dir (e.g. ~/.local/share/rap-analyzer)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    _require_local()
    import platformdirs

    return Path(platformdirs.user_data_dir("rap-analyzer")).expanduser().resolve()


def start(pgdata: Path | None = None, *, keep_running: bool = False) -> Any:
    """Start (or attach to) the embedded server and return its handle.

    With `keep_running=False` a server this call starts stops when the last process
    holding a handle exits, so a CLI command leaves nothing behind; a server that was
    already running (`rap-analyzer db start`) is never stopped by us. `keep_running=True`
    is for a server other processes (operator, pods) use after we exit.
    Raises EmbeddedUnavailable when the `local` extra is not installed.
    """
    _require_local()
    path = pgdata or data_dir() / "pgdata"
    path.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server
        from pgserver.utils import PostmasterInfo

        _forget_dead_handles(path)
        info = PostmasterInfo.read_from_pgdata(path)
        already = info is not None and info.is_running()
        mode = None if keep_running or already else "stop"
        return get_server(path, cleanup_mode=mode)


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver stops the server when the last process holding a handle exits, and
    keeps those processes' pids in a file. A process killed with SIGKILL never takes
    its pid out, and the server would then never be stopped by a later command:
    drop the pids of processes that are gone."""
    from pgserver.utils import DiskList, process_is_running

    handles = DiskList(pgdata / ".handle_pids.json")
    try:
        pids = handles.get()
    except (OSError, ValueError):  # unreadable: pgserver rewrites it
        return
    alive = [pid for pid in pids if pid == os.getpid() or process_is_running(pid)]
    if alive != pids:
        handles.put(alive)


def stop(pgdata: Path | None = None, *, mode: str = "fast") -> bool:
    """Stop a server started with keep_running; True if one was running. `mode` is
    pg_ctl's shutdown mode (`immediate` is a crash, for tests)."""
    import subprocess

    path = pgdata or data_dir() / "pgdata"
    pid_file = path / "postmaster.pid"
    if not pid_file.exists():
        return False
    _require_local()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # pgserver makes its command functions (pg_ctl, initdb...) at import time, in
        # the module's globals, so its types do not list them.
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    try:
        pg_ctl(
            ["-w", "stop", "-m", mode],
            pgdata=path,
            user="pgserver" if os.geteuid() == 0 else None,
        )
    except subprocess.CalledProcessError:
        return False
    return True


@contextlib.contextmanager
def database_url(*, keep_running: bool = False) -> Iterator[str]:
    """`$DATABASE_URL`, or the embedded server's URL for as long as the block runs."""
    url = os.environ.get(env.DATABASE_URL)
    if url:
        yield url
        return
    server = start(keep_running=keep_running)
    yield server.get_uri()
