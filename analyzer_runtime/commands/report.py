"""`rap-analyzer report ...`: HTML (or JSON) reports over the stored results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from analyzer_runtime.commands.common import EXIT_INVALID, T, _fail, _with_db, out
from analyzer_runtime.ledger.connect import pool_for

# Tracks --consistency may ask again (times --repeats): a bound on an extra spend.
MAX_CONSISTENCY = 1000

report_app = typer.Typer(
    no_args_is_help=True, help="Reports over the stored results (trends, LLM agreement)."
)


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


def _report_with_pool(go: Callable[[Any, Any], Awaitable[T]], max_size: int) -> T:
    """_report with the pool too (what asks the provider again takes connections of
    its own: the run's global rate limit)."""
    from rich.markup import escape

    from analyzer_runtime.reports import ReportError

    async def with_pool(url: str) -> T:
        async with pool_for(url, max_size=max_size) as pool, pool.acquire() as conn:
            return await go(conn, pool)

    try:
        return _with_db(with_pool)
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
    llm_analyzers: Annotated[
        list[str] | None,
        typer.Option(
            "--llm-analyzer",
            help="an analyzer_type whose results count as LLM labels (repeat it; first"
            " wins for a track with several). Default: llm, qwen-3-4b-fp8, gemma-3-27b-it,"
            " ollama:llama3.2:3b (the adopted legacy LLMs)",
        ),
    ] = None,
) -> None:
    """Themes and sentiment over release years (or per artist) and clusters of tracks,
    from the stored algorithmic, emotion, llm results (and embeddings when present).
    Results adopted from the original platform count: its LLMs' labels as LLM labels
    (--llm-analyzer), its other analyzers in the per-analyzer counts."""
    import json

    from analyzer_runtime.reports import collect

    if by not in ("year", "artist"):
        raise _fail(f"--by {by!r}: year or artist", EXIT_INVALID)
    _report_charts_available(as_json)

    from analyzer_runtime.legacy_labels import DEFAULT_LLM_ANALYZERS

    llm_types = llm_analyzers or list(DEFAULT_LLM_ANALYZERS)

    async def go(conn: Any) -> Any:
        return await collect.trends_report(
            conn, by, sample=sample, k=clusters, seed=seed, llm_analyzers=llm_types
        )

    report, cl = _report(go)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from analyzer_runtime.reports.html import trends_html

    _write_report(out_path, trends_html(report, cl))


@report_app.command("llm")
def report_llm(
    run_name: Annotated[str | None, typer.Option("--run", help="the llm run's name or uid")] = None,
    analyzer: Annotated[
        str | None,
        typer.Option(
            "--analyzer",
            help="instead of a run: an analyzer_type's labels, e.g. the adopted qwen-3-4b-fp8",
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="with --analyzer: one model_version (default: all)"),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="the HTML file (default report-llm-RUN|ANALYZER.html)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the numbers as JSON")] = False,
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="a reference label set, CSV (with a header) or JSONL: track_id (or artist"
            " and title), sentiment[, themes, quality]; reports Cohen's kappa, accuracy and"
            " per-class counts of sentiment, themes Jaccard, quality difference",
        ),
    ] = None,
    consistency: Annotated[
        int,
        typer.Option(
            "--consistency",
            min=0,
            max=MAX_CONSISTENCY,
            help="with --run: ask this many of the run's tracks again, --repeats times,"
            " with the run's own llm settings, and report how often the answers agree."
            " AN EXTRA SPEND: these requests are paid like the run's (tokens and cost are"
            " shown); nothing is stored. Default 0: off",
        ),
    ] = 0,
    repeats: Annotated[
        int,
        typer.Option("--repeats", min=1, max=10, help="with --consistency: times each is asked"),
    ] = 2,
) -> None:
    """Agreement of an llm run with the algorithmic/emotion analyzers, its score
    distributions, fallbacks and failures, and what packing (tracksPerRequest) changes.
    With --analyzer instead of --run: the same agreement and distributions for an
    analyzer's stored labels, e.g. those adopted from the original platform.
    Label quality: the schema-valid rate, agreement with --reference, self-consistency
    (--consistency), and a cascade's agreement with the LLM on the tracks it kept."""
    import json
    import re

    from analyzer_runtime.reports import ReportError, collect
    from analyzer_runtime.reports import reference as reference_file

    if (run_name is None) == (analyzer is None):
        raise _fail("give --run NAME (an llm run) or --analyzer TYPE, not both", EXIT_INVALID)
    if version is not None and analyzer is None:
        raise _fail("--version goes with --analyzer (a run has one version)", EXIT_INVALID)
    if consistency and run_name is None:
        raise _fail("--consistency goes with --run (the run's settings ask again)", EXIT_INVALID)
    _report_charts_available(as_json)
    ref = None
    if reference is not None:
        from rich.markup import escape

        try:
            ref = collect.Reference(str(reference), reference_file.load(reference))
        except ReportError as exc:
            raise _fail(escape(str(exc)), EXIT_INVALID) from None

    async def go(conn: Any, pool: Any) -> Any:
        if analyzer is not None:
            return await collect.llm_analyzer_report(conn, analyzer, version, reference=ref)
        assert run_name is not None
        return await collect.llm_report(
            conn, run_name, reference=ref, consistency=consistency, repeats=repeats, pool=pool
        )

    report, rows = _report_with_pool(go, max_size=4 if consistency else 1)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from analyzer_runtime.reports.html import llm_html

    name = report["run"]["name"] if report["run"] else report["analyzer"]["analyzer_type"]
    default = Path("report-llm-" + re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".html")
    _write_report(out_path or default, llm_html(report, rows))
