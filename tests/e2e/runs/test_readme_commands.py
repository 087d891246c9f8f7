"""Every shell command in README.md is run by a test, or by something this file names.

The commands are the `$ ` lines of the README's ```console blocks. Each must be in one
of three tables below: LOCAL_TOUR (run here for real against an embedded Postgres),
CLUSTER_TOUR (run here for real against the e2e control plane and the operator), or
ELSEWHERE (commands that cannot run inside the suite, such as `make test` itself:
each names what runs it, and a check that this is true). A README command in none of
them fails `test_every_readme_command_is_covered`, so a command added to the README
without a test fails the suite.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rap_devtools import chart_demo
from rap_devtools import kind as kindmod
from rap_devtools.cluster import REPO_ROOT

from tests.e2e.runs.operator_env import Env, exact

README = REPO_ROOT / "README.md"
MAKEFILE = REPO_ROOT / "Makefile"
CI = REPO_ROOT / ".ci" / "run"
BIN_DIR = Path(os.environ.get("RAP_BIN_DIR", REPO_ROOT / "bin"))
# A README command that runs longer than this is broken here, not slow.
COMMAND_TIMEOUT = 300


# -- what the README says -----------------------------------------------------------


def console_commands(markdown: str) -> list[str]:
    """The `$ ` lines of the ```console blocks, `\\` continuations joined, a trailing
    ` # comment` left out (comments are for the reader, not the shell)."""
    commands: list[str] = []
    in_console = False
    pending = ""
    for line in markdown.splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            in_console = fence == "```console" and not in_console
            continue
        if not in_console:
            continue
        if pending:
            pending += " " + line.strip()
        elif line.startswith("$ "):
            pending = line[2:].strip()
        else:
            continue  # output shown after a command
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        commands.append(re.sub(r"\s+#.*$", "", pending))
        pending = ""
    return commands


def text_blocks(markdown: str) -> list[str]:
    """The ```text blocks: the output the README shows."""
    return re.findall(r"^```text\n(.*?)^```", markdown, flags=re.S | re.M)


def make_targets(makefile: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+):", makefile, flags=re.M))


def test_console_commands_reads_prompts_continuations_and_comments() -> None:
    md = (
        "```console\n$ make demo   # note\nsome output\n$ helm install a \\\n"
        "    --set x=1\n```\n\n```text\n$ not a command\n```\n"
        "```console\n$ kubectl get ar\n```\n"
    )
    assert console_commands(md) == ["make demo", "helm install a --set x=1", "kubectl get ar"]


# -- the tables -----------------------------------------------------------------------

LOCAL_TOUR = [
    "make demo",
    ".venv/bin/rap-analyzer db migrate",
    ".venv/bin/rap-analyzer seed 3000",
    ".venv/bin/rap-analyzer validate examples/analysisrun.yaml",
    ".venv/bin/rap-analyzer run examples/analysisrun.yaml",
    ".venv/bin/rap-analyzer status algorithmic-demo",
]

CLUSTER_TOUR = [
    "kubectl config set-context --current --namespace rap",
    "kubectl apply -f examples/seed-job.yaml",
    "kubectl wait --for=condition=complete job/seed-demo-corpus --timeout=10m",
    "kubectl apply -f examples/analysisrun.yaml",
    "kubectl wait --for=condition=Succeeded analysisrun/algorithmic-demo --timeout=10m",
    "kubectl get analysisruns",
]


@dataclass(frozen=True)
class Elsewhere:
    runner: str  # what runs the command, in words
    check: Callable[[], bool]  # that it really does


def _ci_runs(command: str) -> Callable[[], bool]:
    """True when .ci/run runs `command` (as a whole command, on a line that is not a
    comment: `make test` is not `make test-node`)."""
    pattern = re.compile(rf"(^|[\s;&|!(]){re.escape(command)}($|[\s;&|)])")

    def runs() -> bool:
        lines = [line for line in CI.read_text().splitlines() if not line.lstrip().startswith("#")]
        return any(pattern.search(line) for line in lines)

    return runs


def _make_lint_builds_the_docs() -> bool:
    # `make docs` serves the site until stopped; the same mkdocs.yml is built strictly
    # by `make docs-build`, a prerequisite of `make lint`, which CI runs.
    lint = re.search(r"^lint:([^#\n]*)", MAKEFILE.read_text(), flags=re.M)
    return bool(lint and "docs-build" in lint.group(1).split()) and _ci_runs("make lint")()


def _kind_demo_runs_helm_install() -> bool:
    # tests/node/test_kind_demo.py (make test-node, which CI runs) runs
    # rap_devtools.kind.demo, whose `helm install` is chart_demo.install: release
    # rap-analyzer, chart charts/rap-analyzer, --wait (with the images built here).
    import inspect

    demo_test = (REPO_ROOT / "tests/node/test_kind_demo.py").read_text()
    install = inspect.getsource(chart_demo.install)
    return (
        "kindmod.demo(" in demo_test
        and "chart_demo.install" in inspect.getsource(kindmod.demo)
        and chart_demo.RELEASE == "rap-analyzer"
        and Path(chart_demo.CHART) == REPO_ROOT / "charts" / "rap-analyzer"
        and '"install", RELEASE, str(CHART)' in install
        and '"--wait"' in install
        and _ci_runs("make test-node")()
    )


ELSEWHERE = {
    "make install": Elsewhere(".ci/run on a fresh machine", _ci_runs("make install")),
    "make test": Elsewhere(".ci/run (this suite is what it runs)", _ci_runs("make test")),
    "make docs": Elsewhere("make lint's strict build, run by .ci/run", _make_lint_builds_the_docs),
    "helm install rap-analyzer charts/rap-analyzer -n rap --create-namespace --wait": Elsewhere(
        "tests/node/test_kind_demo.py (make test-node, run by .ci/run)",
        _kind_demo_runs_helm_install,
    ),
}


def test_every_readme_command_is_covered() -> None:
    commands = console_commands(README.read_text())
    assert len(commands) >= 10, commands  # the reader found the blocks
    covered = [*LOCAL_TOUR, *CLUSTER_TOUR, *ELSEWHERE]
    not_covered = [c for c in commands if c not in covered]
    assert not not_covered, f"README commands no test runs: {not_covered}"
    gone = [c for c in covered if c not in commands]
    assert not gone, f"covered commands the README no longer has: {gone}"


@pytest.mark.parametrize("command", sorted(ELSEWHERE))
def test_what_runs_the_others_really_does(command: str) -> None:
    assert ELSEWHERE[command].check(), f"{command!r}: not run by {ELSEWHERE[command].runner}"


def test_every_make_target_the_readme_names_exists() -> None:
    named = set(re.findall(r"`make\s+([a-z][a-z0-9\s-]*)`", README.read_text()))
    targets = make_targets(MAKEFILE.read_text())
    missing = {t for words in named for t in words.split() if t not in targets}
    assert not missing, f"README names make targets the Makefile lacks: {missing}"


# -- running them ---------------------------------------------------------------------


def _run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT,
    )  # fmt: skip


def _ok(command: str, res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, f"$ {command}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """The embedded Postgres's data folder. Not under pytest's tmp dir: run as root,
    Postgres runs as the `pgserver` user, and another pytest session on the machine
    resets pytest's root folder to 0700 (it then cannot reach its data)."""
    path = Path(tempfile.mkdtemp(prefix="rap-readme-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_local_tour(data_dir: Path) -> None:
    """The README's local commands, in its order, on an embedded Postgres of their own."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["RAP_ANALYZER_DATA_DIR"] = str(data_dir)
    readme = README.read_text()
    outputs: dict[str, str] = {}
    for command in LOCAL_TOUR:
        # `make demo`'s first step is `make install`: the suite already runs in that
        # venv, so it is not remade here (-o), whatever the files' times say.
        shell = "make -o .venv/.installed demo" if command == "make demo" else command
        outputs[command] = _ok(command, _run(shell, env))

    demo = outputs["make demo"]
    shown = next(b for b in text_blocks(readme) if b.startswith("Run:"))
    for line in shown.splitlines():  # the status block the README shows is what it prints
        assert line in demo, f"README shows {line!r}; make demo printed:\n{demo[-3000:]}"
    # "Running a YAML again selects only the tracks without a result": the step-by-step
    # run after `make demo` finds nothing left, and `status` shows that run.
    again = outputs[".venv/bin/rap-analyzer run examples/analysisrun.yaml"]
    assert "Phase:      Succeeded" in again and "(NothingToDo)" in again, again
    status = outputs[".venv/bin/rap-analyzer status algorithmic-demo"]
    assert "Phase:      Succeeded" in status and "Progress:   0/0" in status, status


@pytest.mark.e2e
def test_cluster_tour(env: Env, namespace: str, tmp_path: Path) -> None:
    """The README's cluster commands after `helm install`, against the e2e control plane
    and operator: the chart's database Secrets stand in for what helm install creates,
    and `rap` is this test's namespace."""
    url = env.new_database()
    env.db_secret(namespace, url)  # what the operator's runs read
    env.db_secret(namespace, url, name="rap-analyzer-db-owner")  # what the seed Job reads
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(env.cluster.kubeconfig, kubeconfig)  # set-context edits it
    shell_env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}",
    }
    outputs: dict[str, str] = {}
    for command in CLUSTER_TOUR:
        shell = command.replace("--namespace rap", f"--namespace {namespace}")
        try:
            res = _run(shell, shell_env)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"$ {command}: no answer in {COMMAND_TIMEOUT} s; the run's status:\n"
                f"{env.status(namespace, 'algorithmic-demo')}\n--- operator log ---\n"
                f"{env.operator.tail()}"
            )
        outputs[command] = _ok(command, res)

    st = env.status(namespace, "algorithmic-demo")
    assert st["phase"] == "Succeeded" and st["failed"] == 0, st
    total = env.sql(url, "SELECT count(*) FROM tracks")
    assert total == 3000 and st["processed"] == st["total"] == total, st
    exact(env, url, total)
    # The table the README shows, but for AGE.
    shown = next(b for b in text_blocks(README.read_text()) if b.startswith("NAME"))
    printed = outputs["kubectl get analysisruns"].splitlines()
    for want, got in zip(shown.splitlines(), printed, strict=True):
        assert want.split()[:-1] == got.split()[:-1], (want, got)
