"""Without the `local` extra (the image: runtime + operator only) and without
DATABASE_URL, a command that needs the database says what to install, in one
line, with exit code 2: never a ModuleNotFoundError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer_runtime.db import embedded

# Run the CLI as `python -m analyzer_runtime` would, with the package made unimportable.
WITHOUT = (
    "import sys; sys.modules[{mod!r}] = None; sys.argv = ['rap-analyzer', *sys.argv[1:]]; "
    "from analyzer_runtime.cli import main; main()"
)


def _cli(tmp_path: Path, mod: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RAP_ANALYZER_DEBUG")}
    env["RAP_ANALYZER_DATA_DIR"] = str(tmp_path)
    env["COLUMNS"] = "300"  # one line, whatever the terminal
    return subprocess.run(
        [sys.executable, "-c", WITHOUT.format(mod=mod), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    ("mod", "args"),
    [
        ("pgserver", ("db", "migrate")),
        ("pgserver", ("db", "url")),
        ("platformdirs", ("db", "start")),
    ],
)
def test_missing_local_extra_is_one_actionable_line(
    tmp_path: Path, mod: str, args: tuple[str, ...]
) -> None:
    proc = _cli(tmp_path, mod, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "pip install 'rap-analyzer[local]'" in lines[0]
    assert "DATABASE_URL" in lines[0]
    assert mod in lines[0]
    assert not list(tmp_path.iterdir())  # nothing was created


def test_database_url_needs_no_local_extra(tmp_path: Path) -> None:
    """With DATABASE_URL set the embedded server is never touched: the command gets
    as far as connecting (and fails on the unreachable address, exit 3)."""
    env = {k: v for k, v in os.environ.items() if k != "RAP_ANALYZER_DEBUG"}
    env.update(
        RAP_ANALYZER_DATA_DIR=str(tmp_path),
        DATABASE_URL="postgresql://u:p@127.0.0.1:1/db",
        DB_CONNECT_TIMEOUT="0.5",
    )
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT.format(mod="pgserver"), "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "rap-analyzer[local]" not in proc.stderr


def test_start_raises_embedded_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)
    with pytest.raises(embedded.EmbeddedUnavailable, match=r"rap-analyzer\[local\]"):
        embedded.start(tmp_path / "pgdata")
    assert not (tmp_path / "pgdata").exists()
