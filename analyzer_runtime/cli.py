"""`rap-analyzer`: the command line for local use and for the Job pods.

Everything here is thin: parse arguments, open the database, call the module that
does the work, print. Exit codes: 0 ok, 1 run failed or fatal error, 2 invalid input
(or refused: a differing YAML on resume, an overlapping run; or no DATABASE_URL where the
embedded Postgres is not installed), 3 database unreachable
(at start or mid-run), 130 stopped by SIGINT (Ctrl-C), 143 stopped by SIGTERM. Errors
are one line; the traceback only with --debug.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from analyzer_runtime.db.connect import (
    DatabaseUnavailable,
    InvalidDatabaseURL,
    database_url,
    host_of,
    is_connection_error,
    pool_for,
    redact,
)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=__doc__.split("\n")[0],
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(no_args_is_help=True, help="Database: migrations and the embedded server.")
app.add_typer(db_app, name="db")
model_app = typer.Typer(
    no_args_is_help=True, help="Models distilled from stored results (the quality model)."
)
app.add_typer(model_app, name="model")
report_app = typer.Typer(
    no_args_is_help=True, help="Reports over the stored results (trends, LLM agreement)."
)
app.add_typer(report_app, name="report")
err = Console(stderr=True)
out = Console()
T = TypeVar("T")

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_DB = 3
EXIT_SIGNAL_BASE = 128  # 128 + signal number: 130 for SIGINT, 143 for SIGTERM
DEBUG_ENV = "RAP_ANALYZER_DEBUG"
_debug = bool(os.environ.get(DEBUG_ENV))


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", envvar=DEBUG_ENV, help="show tracebacks of errors")
    ] = False,
) -> None:
    """Analyze a corpus of rap lyrics in Postgres: locally or as Kubernetes Jobs."""
    global _debug
    _debug = _debug or debug
    if not _debug:
        # asyncpg logs its pool's reconnect attempts with tracebacks; the one-line
        # error the command ends with says what matters.
        logging.getLogger("asyncpg").setLevel(logging.CRITICAL)


def _fail(message: str, code: int) -> typer.Exit:
    # One line, no traceback: this is what a person (or a pod's log) sees.
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _with_db(fn: Callable[[str], Awaitable[T]], *, keep_running: bool = False) -> T:
    url = ""
    try:
        with database_url(keep_running=keep_running) as url:
            return asyncio.run(fn(url))
    except InvalidDatabaseURL as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    except Exception as exc:
        if _debug or not is_connection_error(exc):
            raise
        if isinstance(exc, DatabaseUnavailable):
            raise _fail(str(exc), EXIT_DB) from None
        raise _fail(
            f"lost the connection to the database at {host_of(url)}:"
            f" {redact(str(exc)) or type(exc).__name__}",
            EXIT_DB,
        ) from None


async def _migrate(url: str) -> list[Any]:
    from analyzer_runtime.db.migrate import migrate

    async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
        return await migrate(conn)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the schema migrations that are not yet recorded."""
    applied = _with_db(_migrate)
    if applied:
        for m in applied:
            out.print(f"applied {m.version:04d}_{m.name}")
    else:
        out.print("schema is up to date")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded Postgres and leave it running; prints its URL."""
    from analyzer_runtime.db import embedded

    print(embedded.start(keep_running=True).get_uri())


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded Postgres started by `db start`."""
    from analyzer_runtime.db import embedded

    out.print("stopped" if embedded.stop() else "not running")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (the embedded server's unless DATABASE_URL is set)."""
    from analyzer_runtime.db import embedded

    print(os.environ.get("DATABASE_URL") or embedded.start(keep_running=True).get_uri())


@db_app.command("gc")
def db_gc(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="retention: runs finished longer ago than this (30d, 12h, 90m)"
        ),
    ] = "30d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count only; delete nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print what was done as JSON")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="items deleted per transaction")] = 10_000,
) -> None:
    """Compact the run ledger: finished runs older than --older-than keep only their
    failed items (with their errors). Status and results are unchanged; unfinished runs
    are never touched."""
    import json

    from analyzer_runtime import ledger_gc

    try:
        retention = ledger_gc.parse_duration(older_than)
    except ValueError as exc:
        raise _fail(f"--older-than: {exc}", EXIT_INVALID) from None

    async def go(url: str) -> ledger_gc.GcReport:
        await _migrate(url)
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await ledger_gc.gc(conn, retention, dry_run=dry_run, batch_size=batch_size)

    try:
        report = _with_db(go)
    except ledger_gc.GcBusy as exc:
        raise _fail(str(exc), EXIT_FAILED) from None
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    for r in report.runs:
        out.print(
            f"{r.kind} {r.name} ({r.uid}, {r.state} {r.finished_at:%Y-%m-%d %H:%M}):"
            f" {r.removed} item(s) {'to remove' if dry_run else 'removed'},"
            f" {r.kept} failed kept",
            highlight=False,
        )
    out.print(report.summary(), highlight=False)


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


def _load(path: Path) -> Any:
    from pydantic import ValidationError

    from analyzer_runtime.spec import RunSpecError, format_validation_error, load_manifest

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
    from analyzer_runtime.planner import OverlapError
    from analyzer_runtime.status import render_status_text

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
    from analyzer_runtime.status import render_status_text

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


# -- semantic search (issue 13) ------------------------------------------------------

LimitOption = Annotated[int, typer.Option(min=1, max=100, help="how many tracks to show")]
JsonOption = Annotated[bool, typer.Option("--json", help="print the results as JSON")]


def _search_command(go: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run a search against the database: SearchError is one line (exit 2 for bad
    input, 1 when there is nothing to search), the database errors as everywhere."""
    from analyzer_runtime import search

    async def with_pool(url: str) -> Any:
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await go(conn)

    try:
        return _with_db(with_pool)
    except search.InvalidQuery as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    except search.SearchError as exc:
        raise _fail(str(exc), EXIT_FAILED) from None


def _print_hits(result: Any, heading: str, as_json: bool) -> None:
    import json

    from rich.table import Table

    if as_json:
        print(
            json.dumps(
                {"plan": result.plan, "results": [h.to_dict() for h in result.hits]}, indent=2
            )
        )
        return
    if not result.hits:
        out.print(f"{heading}: no tracks found", highlight=False)
        return
    table = Table(title=heading, title_justify="left")
    # Rank, id and distance never wrap and the first line is cut with an ellipsis, so
    # the table reads at 80 columns too (artist and title wrap instead).
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("artist", min_width=10)
    table.add_column("title", min_width=10)
    table.add_column("distance", justify="right", no_wrap=True)
    table.add_column("first line", max_width=24, no_wrap=True, overflow="ellipsis")
    for i, h in enumerate(result.hits, 1):
        table.add_row(str(i), str(h.track_id), h.artist, h.title, f"{h.distance:.4f}", h.first_line)
    out.print(table, highlight=False)


def _load_embedder() -> Any:
    from analyzer_runtime.embedding.model import Embedder, ModelNotFoundError

    try:
        return Embedder.load()
    except ModelNotFoundError as exc:
        raise _fail(str(exc), EXIT_FAILED) from None


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="words to search the lyrics for, by meaning")],
    artist: Annotated[
        str | None, typer.Option(help="only tracks of this artist (exact name)")
    ] = None,
    limit: LimitOption = 10,
    as_json: JsonOption = False,
) -> None:
    """Tracks whose lyrics are nearest in meaning to QUERY (needs an `embedding` run)."""
    from analyzer_runtime import search
    from analyzer_runtime.embedding.model import MODEL_NAME

    try:
        q = search.check_query(query)
    except search.InvalidQuery as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    embedder = _load_embedder()

    async def go(conn: Any) -> Any:
        # Before the model runs: no embeddings means nothing to compare with.
        if not await search.has_embeddings(conn, MODEL_NAME):
            raise search.NoEmbeddings(MODEL_NAME)
        vector = embedder.embed([q])[0]
        return await search.nearest(conn, vector, MODEL_NAME, limit=limit, artist=artist)

    result = _search_command(go)
    by = f" by {artist}" if artist else ""
    _print_hits(result, f"nearest to {q[:60]!r}{by}", as_json)


@app.command("similar")
def similar_cmd(
    track_id: Annotated[int, typer.Argument(help="a track's id", min=1, max=2**31 - 1)],
    limit: LimitOption = 10,
    as_json: JsonOption = False,
) -> None:
    """Tracks nearest in meaning to track TRACK_ID (from its stored vector)."""
    from analyzer_runtime import search
    from analyzer_runtime.embedding.model import MODEL_NAME

    async def go(conn: Any) -> Any:
        return await search.similar(conn, track_id, MODEL_NAME, limit=limit)

    _print_hits(_search_command(go), f"nearest to track {track_id}", as_json)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8000,
) -> None:
    """The read-only HTTP search API (OpenAPI docs at /docs); needs the `search` extra."""
    try:
        import uvicorn

        from analyzer_runtime.api.app import create_app
    except ImportError as exc:
        raise _fail(
            f"the API needs `pip install 'rap-analyzer[search]'` ({exc})", EXIT_INVALID
        ) from None

    def go(url: str) -> None:
        uvicorn.run(create_app(url), host=host, port=port, log_level="info")

    try:
        with database_url() as url:
            go(url)
    except InvalidDatabaseURL as exc:
        raise _fail(str(exc), EXIT_INVALID) from None


# The options every shard command (what a Job pod runs) takes.
ShardOption = Annotated[
    int | None,
    typer.Option(help="shard index (default: $JOB_COMPLETION_INDEX)", show_default=False),
]
MetricsPortOption = Annotated[
    int, typer.Option(envvar="METRICS_PORT", help="Prometheus port, 0 = off")
]


@app.command()
def analyze(
    run_id: Annotated[str, typer.Option("--run-id", help="the run's uid")],
    shard: ShardOption = None,
    metrics_port: MetricsPortOption = 9102,
) -> None:
    """Work through one shard of a planned run (what each Job pod runs)."""
    from analyzer_runtime import worker
    from analyzer_runtime.db.connect import create_pool

    def summary(report: worker.ShardReport) -> str:
        return (
            f"shard {report.shard} attempt {report.attempt}: {report.done} done,"
            f" {report.failed} failed, {report.skipped} skipped in {report.batches} batches"
        )

    _run_shard(
        shard,
        metrics_port,
        create_pool,
        lambda pool, shard, stop: worker.run_shard(pool, run_id, shard, stop=stop),
        summary,
    )


@app.command()
def scrape(
    run_id: Annotated[str, typer.Option("--run-id", help="the ScrapeJob's uid")],
    shard: ShardOption = None,
    metrics_port: MetricsPortOption = 9102,
) -> None:
    """Scrape one shard of a planned ScrapeJob (what each of its Job pods runs)."""
    from analyzer_runtime import worker
    from analyzer_runtime.db.connect import create_pool
    from analyzer_runtime.scrape.worker import run_scrape_shard

    def summary(report: worker.ShardReport) -> str:
        return (
            f"shard {report.shard} attempt {report.attempt}: {report.done} artists done,"
            f" {report.failed} failed"
        )

    _run_shard(
        shard,
        metrics_port,
        create_pool,
        lambda pool, shard, stop: run_scrape_shard(pool, run_id, shard, stop=stop),
        summary,
        quiet=("httpx",),  # one line per request is noise
    )


def _run_shard(
    shard: int | None,
    metrics_port: int,
    create: Callable[..., Awaitable[Any]],
    work: Callable[[Any, int, Any], Awaitable[Any]],
    summary: Callable[[Any], str],
    *,
    quiet: tuple[str, ...] = (),
) -> None:
    """What a Job pod's shard command does: resolve the shard index, serve metrics,
    connect (with retries), run `work(pool, shard, stop)` until done or SIGTERM, and
    print `summary(report)`; exit 143 if stopped before finishing."""
    from analyzer_runtime import metrics, worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    if shard is None:
        idx = os.environ.get("JOB_COMPLETION_INDEX")
        if idx is None or not idx.isdigit():
            raise _fail("no --shard given and JOB_COMPLETION_INDEX is not set", EXIT_INVALID)
        shard = int(idx)
    metrics.serve(metrics_port)

    async def go(url: str) -> worker.ShardReport:
        pool = await _connect_with_retries(create, url, f"rap-analyzer-shard-{shard}")
        try:
            stop = worker.StopFlag()
            stop.install()
            report: worker.ShardReport = await work(pool, shard, stop)
            return report
        finally:
            await pool.close()

    try:
        report = _with_db(go)
    except worker.FatalError as exc:
        raise _fail(str(exc), worker.EXIT_FATAL) from None
    print(
        summary(report) + ("; stopped before finishing" if report.stopped else ""),
        file=sys.stderr,
    )
    if report.stopped:
        raise typer.Exit(worker.EXIT_TERMINATED)


async def _connect_with_retries(create: Callable[..., Awaitable[T]], url: str, name: str) -> T:
    """A pod may start before its database: retry for about a minute, then give up."""
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

    from analyzer_runtime.db.budget import SHARD_POD_CONNECTIONS

    async for attempt in AsyncRetrying(
        stop=stop_after_delay(float(os.environ.get("DB_CONNECT_TIMEOUT", "60"))),
        wait=wait_exponential(multiplier=0.5, max=8),
        retry=retry_if_exception_type(DatabaseUnavailable),
        reraise=True,
    ):
        with attempt:
            # Opened at full size, never grown: a refused connection shows here, where
            # it is retried, and the pod holds exactly what the operator's budget counts.
            # application_name: pg_stat_activity (and PgBouncer's SHOW CLIENTS) name the shard.
            return await create(
                url,
                min_size=SHARD_POD_CONNECTIONS,
                max_size=SHARD_POD_CONNECTIONS,
                server_settings={"application_name": name},
            )
    raise AssertionError("unreachable")


# -- rap-analyzer model ... (commands of model_app) ---------------------------------


@model_app.command("train")
def model_train(
    name: Annotated[str, typer.Argument(help="the model to train: quality")],
    from_run: Annotated[
        str, typer.Option("--from-run", help="the llm AnalysisRun (name or uid) whose labels")
    ],
    folds: Annotated[int, typer.Option(help="k of the k-fold evaluation")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
) -> None:
    """Train the distilled quality model from an llm run's labels and the stored
    algorithmic/emotion features; report k-fold MAE and Spearman; store it versioned."""
    import json

    from analyzer_runtime.quality import MODEL_NAME, training

    if name != MODEL_NAME:
        raise _fail(f"unknown model {name!r}; available: {MODEL_NAME}", EXIT_INVALID)

    async def go(url: str) -> Any:
        await _migrate(url)
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await training.train(conn, from_run, folds=folds)

    try:
        model, metrics = _with_db(go)
    except training.TrainingError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    if as_json:
        doc = {"name": model.name, "version": model.version, "trainedFrom": model.training_run,
               "sha256": model.sha256, "metrics": metrics}  # fmt: skip
        print(json.dumps(doc, indent=2))
    else:
        out.print(training.render_metrics(model, metrics), highlight=False)


@model_app.command("list")
def model_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The stored models: name, version, training run, tracks, held-out MAE."""
    import json

    from analyzer_runtime.quality import storage

    async def go(url: str) -> Any:
        await _migrate(url)
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await storage.list_models(conn)

    models = _with_db(go)
    rows = [
        {"name": m.name, "version": m.version, "trainedFrom": m.training_run,
         "tracks": m.training_tracks, "createdAt": m.created_at.isoformat(),
         "mae": {t: v["gradient_boosting"]["mae"] for t, v in m.metrics["targets"].items()}}
        for m in models
    ]  # fmt: skip
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("no models; train one: rap-analyzer model train quality --from-run <llm run>")
    for r in rows:
        maes = ", ".join(f"{t} MAE {v:.3f}" for t, v in r["mae"].items())
        out.print(
            f"{r['name']} v{r['version']}  from {r['trainedFrom']}  {r['tracks']} tracks"
            f"  {maes}  {r['createdAt']}",
            highlight=False,
        )


# -- rap-analyzer report ... (commands of report_app) --------------------------------


def _report(go: Callable[[Any], Awaitable[T]]) -> T:
    """Run a report's queries: ReportError is one line, exit 2."""
    from rich.markup import escape

    from analyzer_runtime.reports import ReportError

    async def with_conn(url: str) -> T:
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await go(conn)

    try:
        return _with_db(with_conn)
    except ReportError as exc:
        raise _fail(escape(str(exc)), EXIT_INVALID) from None


def _report_charts_available(as_json: bool) -> None:
    """Before any query: the HTML needs matplotlib (the `reports` extra), --json not."""
    if as_json:
        return
    from rich.markup import escape

    from analyzer_runtime.reports.charts import MissingMatplotlib, require

    try:
        require()
    except MissingMatplotlib as exc:  # "[reports]" is not rich markup
        raise _fail(escape(str(exc)), EXIT_INVALID) from None


def _write_report(path: Path, html: str) -> None:
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{path}: {exc.strerror}", EXIT_INVALID) from None
    out.print(f"wrote {path} ({len(html.encode()) // 1024} KB)", highlight=False)


@report_app.command("trends")
def report_trends(
    by: Annotated[str, typer.Option(help="group by release `year` or by `artist`")] = "year",
    out_path: Annotated[Path, typer.Option("--out", help="the HTML file to write")] = Path(
        "report-trends.html"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="print the numbers as JSON")] = False,
    sample: Annotated[int, typer.Option(min=10, help="tracks sampled for clustering")] = 2000,
    clusters: Annotated[int, typer.Option(min=2, max=20, help="k of k-means")] = 6,
    seed: Annotated[int, typer.Option(help="seed of the sample and of k-means")] = 15,
) -> None:
    """Themes and sentiment over release years (or per artist) and clusters of tracks,
    from the stored algorithmic, emotion, llm results (and embeddings when present)."""
    import json

    from analyzer_runtime.reports import collect

    if by not in ("year", "artist"):
        raise _fail(f"--by {by!r}: year or artist", EXIT_INVALID)
    _report_charts_available(as_json)

    async def go(conn: Any) -> Any:
        return await collect.trends_report(conn, by, sample=sample, k=clusters, seed=seed)

    report, cl = _report(go)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from analyzer_runtime.reports.html import trends_html

    _write_report(out_path, trends_html(report, cl))


@report_app.command("llm")
def report_llm(
    run_name: Annotated[str, typer.Option("--run", help="the llm run's name or uid")],
    out_path: Annotated[
        Path | None, typer.Option("--out", help="the HTML file (default report-llm-RUN.html)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the numbers as JSON")] = False,
) -> None:
    """Agreement of an llm run with the algorithmic/emotion analyzers, its score
    distributions, fallbacks and failures, and what packing (tracksPerRequest) changes."""
    import json

    from analyzer_runtime.reports import collect

    _report_charts_available(as_json)

    async def go(conn: Any) -> Any:
        return await collect.llm_report(conn, run_name)

    report, rows = _report(go)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from analyzer_runtime.reports.html import llm_html

    _write_report(
        out_path or Path(f"report-llm-{report['run']['name']}.html"), llm_html(report, rows)
    )


def main() -> None:
    """The entry point: no traceback reaches the user without --debug."""
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run handles it itself)
        err.print("interrupted", highlight=False)
        sys.exit(EXIT_SIGNAL_BASE + 2)
    except Exception as exc:
        if _debug:
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
