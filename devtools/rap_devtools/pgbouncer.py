"""A real PgBouncer (Debian's `pgbouncer`, `make pgbouncer`) in transaction pooling in
front of a test Postgres: our own process with a generated ini in a temp dir, on a free
loopback port, never the package's system service.

    with pgbouncer(server.get_uri()) as bouncer:
        url = bouncer.url("mydb")          # postgresql://postgres:***@127.0.0.1:<port>/mydb
        bouncer.admin("SHOW POOLS")        # the admin console, as rows of dicts

Clients authenticate with scram-sha-256 against a generated password (auth_file), so
the URL carries a password as a chart's Secret would; PgBouncer reaches the server over
its unix socket, where the embedded server trusts local connections.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from rap_devtools.procs import ManagedProcess, free_port
from rap_devtools.waiting import wait_for

PGBOUNCER = Path("/usr/sbin/pgbouncer")
INSTALL_HINT = "PgBouncer is not installed: run `make pgbouncer` (Debian's pgbouncer package)"
# Set on every server connection PgBouncer opens: what create_pool sends as a startup
# parameter on a direct connection, which PgBouncer would refuse (connect.py).
CONNECT_QUERY = "SET client_connection_check_interval = 2000"


@dataclass(frozen=True)
class PgBouncer:
    port: int
    user: str
    password: str
    workdir: Path
    process: ManagedProcess
    psql: Path

    def url(self, database: str, user: str | None = None, password: str = "") -> str:
        """A client URL for `database` through PgBouncer (contains the password); as
        `user` (one of pgbouncer()'s `users`) with `password`, or as the admin."""
        name, pw = (self.user, self.password) if user is None else (user, password)
        return (
            f"postgresql://{quote(name)}:{quote(pw, safe='')}"
            f"@127.0.0.1:{self.port}/{quote(database)}"
        )

    def admin(self, command: str) -> list[dict[str, str]]:
        """A command on PgBouncer's admin console (SHOW POOLS, SHOW STATS, ...). psql,
        because the console speaks only the simple query protocol."""
        res = subprocess.run(
            [str(self.psql), "--csv", "-X", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", self.user, "-d", "pgbouncer", "-c", command],
            env={**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"pgbouncer admin {command!r} failed: {res.stderr.strip()}")
        return list(csv.DictReader(io.StringIO(res.stdout)))

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)


def _server_socket(server_uri: str) -> tuple[Path, int]:
    """The unix-socket directory and port of an embedded (pgserver) server's URI."""
    parts = urlsplit(server_uri)
    host = parse_qs(parts.query).get("host", [""])[0]
    if not host.startswith("/"):
        raise ValueError("pgbouncer() fronts a server on a unix socket (the embedded pgserver)")
    return Path(host), parts.port or 5432


def _psql() -> Path:
    """psql from the pgserver wheel (the machine needs no PostgreSQL client package)."""
    import pgserver  # the `local` extra, installed in the dev venv

    return Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"


def _accepts(port: int, proc: ManagedProcess) -> bool:
    if not proc.running():
        raise RuntimeError(f"pgbouncer exited:\n{proc.log_tail()}")
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def write_config(
    workdir: Path,
    *,
    socket_dir: Path,
    server_port: int,
    port: int,
    user: str,
    password: str,
    pool_size: int,
    max_client_conn: int,
    users: Mapping[str, str] | None = None,
) -> Path:
    """The ini and auth file; returns the ini's path. `users` (name -> password): more
    clients, each logging in to the server as itself (as the chart's database roles
    do); without them every server connection is `user`'s."""
    auth = workdir / "userlist.txt"
    # Plain text in the auth file lets PgBouncer do SCRAM with the client; the file
    # is the process owner's only (0600).
    auth.write_text("".join(f'"{u}" "{p}"\n' for u, p in {user: password, **(users or {})}.items()))
    auth.chmod(0o600)
    login = "" if users else f" user={user}"
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
* = host={socket_dir} port={server_port}{login} connect_query='{CONNECT_QUERY}'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
; no unix socket: it would default to /tmp/.s.PGSQL.<port>, shared with everyone
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {auth}
admin_users = {user}
stats_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = {max_client_conn}
; nothing in ignore_startup_parameters: a client that sends one (create_pool without
; DATABASE_POOL_MODE=transaction) must fail loudly, not run with a statement cache
logfile = {workdir / "pgbouncer.log"}
"""
    )
    ini.chmod(0o600)
    return ini


@contextlib.contextmanager
def pgbouncer(
    server_uri: str,
    *,
    pool_size: int = 4,
    max_client_conn: int = 200,
    timeout: float = 30,
    users: Mapping[str, str] | None = None,
) -> Iterator[PgBouncer]:
    """PgBouncer (pool_mode=transaction) in front of the embedded server at
    `server_uri`, for as long as the block runs; `users`: write_config's."""
    if not PGBOUNCER.is_file():
        raise RuntimeError(INSTALL_HINT)
    socket_dir, server_port = _server_socket(server_uri)
    user = urlsplit(server_uri).username or "postgres"
    password = secrets.token_urlsafe(18)
    workdir = Path(tempfile.mkdtemp(prefix="rap-pgbouncer-"))
    argv = [str(PGBOUNCER)]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; it runs as the owner of the server's socket
        # directory (pgserver's system user, whose data directory is 0700).
        owner = pwd.getpwuid(socket_dir.stat().st_uid)
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        argv += ["-u", owner.pw_name]
    proc: ManagedProcess | None = None
    try:
        for _attempt in range(3):  # the free port may be taken before PgBouncer binds it
            port = free_port()
            ini = write_config(
                workdir, socket_dir=socket_dir, server_port=server_port, port=port, user=user,
                password=password, pool_size=pool_size, max_client_conn=max_client_conn,
                users=users,
            )  # fmt: skip
            if os.geteuid() == 0:
                for f in (ini, workdir / "userlist.txt"):
                    os.chown(f, workdir.stat().st_uid, workdir.stat().st_gid)
            proc = ManagedProcess("pgbouncer", [*argv, str(ini)], workdir / "stdout.log")
            proc.start()
            try:
                wait_for(
                    functools.partial(_accepts, port, proc),
                    timeout=timeout, interval=0.05, what="pgbouncer accepting connections",
                    describe=proc.log_tail,
                )  # fmt: skip
                break
            except AssertionError:
                tail = proc.log_tail() + _read(workdir / "pgbouncer.log")
                proc.stop()
                if "in use" not in tail:
                    raise
        else:
            raise RuntimeError("pgbouncer found no free port in 3 attempts")
        yield PgBouncer(port, user, password, workdir, proc, _psql())
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
