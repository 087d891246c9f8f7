"""`rap-analyzer`: the command line for local use and for the Job pods.

Everything here is thin: parse arguments, open the database, call the module that
does the work, print. Exit codes: 0 ok, 1 run failed or fatal error, 2 invalid input
(or refused: a differing YAML on resume, an overlapping run; or no DATABASE_URL where the
embedded Postgres is not installed), 3 database unreachable
(at start or mid-run), 130 stopped by SIGINT (Ctrl-C), 143 stopped by SIGTERM. Errors
are one line; the traceback only with --debug.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from analyzer_runtime.commands import common
from analyzer_runtime.commands.common import (
    DEBUG_ENV,
    EXIT_DB,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_SIGNAL_BASE,
    _fail,
    _migrate,
    _with_db,
    err,
    out,
)
from analyzer_runtime.commands.db import db_app
from analyzer_runtime.commands.export import export_app
from analyzer_runtime.commands.importer import import_cmd
from analyzer_runtime.commands.model import model_app
from analyzer_runtime.commands.report import report_app
from analyzer_runtime.commands.search import search_cmd, serve, similar_cmd
from analyzer_runtime.commands.shard import analyze, scrape
from analyzer_runtime.ledger.connect import is_connection_error, pool_for, redact

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=__doc__.split("\n")[0],
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.add_typer(export_app, name="export")
app.add_typer(model_app, name="model")
app.add_typer(report_app, name="report")


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", envvar=DEBUG_ENV, help="show tracebacks of errors")
    ] = False,
) -> None:
    """Analyze a corpus of rap lyrics in Postgres: locally or as Kubernetes Jobs."""
    common._debug = common._debug or debug
    if not common._debug:
        # asyncpg logs its pool's reconnect attempts with tracebacks; the one-line
        # error the command ends with says what matters.
        logging.getLogger("asyncpg").setLevel(logging.CRITICAL)


@app.command()
def seed(
    n: Annotated[int, typer.Argument(help="number of synthetic tracks", min=1)],
    seed: Annotated[int, typer.Option(help="generator seed")] = 42,
) -> None:
    """Load N synthetic rap tracks (idempotent: tracks already there are kept)."""
    import time

    from analyzer_runtime import seed as seeding

    async def go(url: str) -> int:
        await _migrate(url)
        async with pool_for(url, max_size=1) as pool:
            return await seeding.seed(pool, n, seed=seed)

    t0 = time.perf_counter()
    new = _with_db(go)
    out.print(f"seeded {n} tracks ({new} new) in {time.perf_counter() - t0:.1f}s")


app.command("import")(import_cmd)  # `import` is a keyword: the function has another name


def _load(path: Path) -> Any:
    from pydantic import ValidationError

    from analyzer_runtime.contract import RunSpecError, format_validation_error, load_manifest

    try:
        text = path.read_bytes()  # the loader checks the encoding and says what is wrong
    except OSError as exc:
        raise _fail(f"{path}: {exc.strerror}", EXIT_INVALID) from None
    try:
        return load_manifest(text)
    except ValidationError as exc:
        raise _fail(
            f"{path} is not a valid AnalysisRun:\n{format_validation_error(exc)}", 2
        ) from None
    except RunSpecError as exc:
        raise _fail(f"{path}: {exc}", EXIT_INVALID) from None


@app.command()
def validate(path: Annotated[Path, typer.Argument(help="AnalysisRun YAML")]) -> None:
    """Check an AnalysisRun YAML with the same models the CRD is generated from."""
    m = _load(path)
    out.print(f"{path}: valid AnalysisRun {m.metadata.name!r} ({m.spec.analyzer})")


@app.command()
def run(
    path: Annotated[
        Path | None,
        typer.Argument(help="AnalysisRun YAML, as for kubectl apply (optional with --uid)"),
    ] = None,
    uid: Annotated[
        str | None,
        typer.Option(help="resume the run planned with this uid (default: plan a new run)"),
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a live progress bar")] = True,
    allow_overlap: Annotated[
        bool,
        typer.Option(help="plan even if an active run of the same analyzer has the same tracks"),
    ] = False,
) -> None:
    """Plan and run an AnalysisRun locally: shards as local processes.

    With --uid, resume a run (after Ctrl-C, a crash, a reboot): the spec planned in the
    database is used; a YAML given too must not differ except in spec.parallelism."""
    from analyzer_runtime import localrun
    from analyzer_runtime.analyzers.registry import UnknownAnalyzerError
    from analyzer_runtime.contract.status import render_status_text
    from analyzer_runtime.ledger.planner import OverlapError

    if path is None and uid is None:
        raise _fail("give an AnalysisRun YAML to plan a run, or --uid UID to resume one", 2)
    manifest = _load(path) if path is not None else None
    where = str(path) if path is not None else f"run {uid}"

    async def go(url: str) -> dict[str, Any]:
        await _migrate(url)
        return await localrun.run_local(
            manifest, url, uid=uid, progress=progress, console=out, allow_overlap=allow_overlap
        )

    try:
        status = _with_db(go)
    except UnknownAnalyzerError as exc:
        raise _fail(f"{where}: spec.analyzer: {exc}", EXIT_INVALID) from None
    except ValueError as exc:  # a version this code does not implement, a differing YAML
        raise _fail(f"{where}: {exc}", EXIT_INVALID) from None
    except OverlapError as exc:
        raise _fail(
            f"{where}: {exc} (rap-analyzer run --allow-overlap, or spec.allowOverlap: true)",
            EXIT_INVALID,
        ) from None
    except localrun.Interrupted as exc:
        out.print(render_status_text(exc.status, name=exc.run.name), highlight=False)
        err.print(
            f"interrupted ({exc}): finished work is saved. Resume with:"
            f" {localrun.resume_command(exc.run.uid)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_SIGNAL_BASE + exc.signum) from None
    if status.get("phase") == "Failed":
        raise typer.Exit(EXIT_FAILED)


@app.command()
def status(
    run: Annotated[str, typer.Argument(help="run uid or name")],
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Show a run's status, computed from its shard counters."""
    import json

    from analyzer_runtime import localrun
    from analyzer_runtime.contract.status import render_status_text

    async def go(url: str) -> dict[str, Any] | None:
        async with pool_for(url, max_size=1) as pool:
            return await localrun.status_of(pool, run)

    st = _with_db(go)
    if st is None:
        raise _fail(f"no run with uid or name {run!r}", 1)
    if as_json:  # plain print: rich would wrap long lines (a condition's message) mid-string
        print(json.dumps(st, indent=2))
        return
    out.print(render_status_text(st, name=run), highlight=False)
    if st.get("resume") and not as_json:
        out.print(f"interrupted; resume with: {st['resume']}", highlight=False, soft_wrap=True)


# The other top-level commands, in the order `--help` lists them.
app.command("search")(search_cmd)
app.command("similar")(similar_cmd)
app.command()(serve)
app.command()(analyze)
app.command()(scrape)


def main() -> None:
    """The entry point: no traceback reaches the user without --debug."""
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run handles it itself)
        err.print("interrupted", highlight=False)
        sys.exit(EXIT_SIGNAL_BASE + 2)
    except Exception as exc:
        if common._debug:
            raise
        from analyzer_runtime.db.embedded import EmbeddedUnavailable

        if isinstance(exc, EmbeddedUnavailable):  # no DATABASE_URL, no `local` extra
            from rich.markup import escape

            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_INVALID)
        err.print(
            f"[bold red]error:[/] {type(exc).__name__}: {redact(str(exc))}"
            f" (run with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_DB if is_connection_error(exc) else EXIT_FAILED)
