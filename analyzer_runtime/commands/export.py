"""`rap-analyzer export ...`: labels and tracks out, as Parquet, CSV or JSON lines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from analyzer_runtime.commands.common import EXIT_INVALID, _fail, _with_db, out
from analyzer_runtime.ledger.connect import pool_for

export_app = typer.Typer(
    no_args_is_help=True,
    help="Export results (labels) or tracks to Parquet, CSV or JSON lines.",
)

OutOption = Annotated[
    Path,
    typer.Option(
        "--out", help="the file to write (replaced when the export completes)", dir_okay=False
    ),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format", help="parquet, csv or jsonl (default: from --out's extension)", metavar="FMT"
    ),
]
ChunkOption = Annotated[
    int, typer.Option("--chunk-size", min=1, help="rows fetched (and written) at a time")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the summary as JSON")]


def _export(path: Path, given: str | None, go: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """Check the format and the target folder, run `go(conn, fmt)`; the export's
    refusals are one line, exit 2."""
    from rich.markup import escape

    from analyzer_runtime import export

    try:
        fmt = export.format_for(path, given)
    except export.FormatError as exc:
        raise _fail(escape(str(exc)), EXIT_INVALID) from None
    if not path.parent.is_dir():
        raise _fail(escape(f"{path}: no such folder {str(path.parent)!r}"), EXIT_INVALID)

    async def with_conn(url: str) -> Any:
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await go(conn, fmt)

    try:
        return _with_db(with_conn)
    except (export.ExportError, export.MissingSchema) as exc:  # the file's errors too
        raise _fail(escape(str(exc)), EXIT_INVALID) from None


def _report(summary: Any, as_json: bool) -> None:
    import json

    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        out.print(summary.line(), highlight=False, soft_wrap=True)


@export_app.command("results")
def export_results(
    analyzer: Annotated[
        str,
        typer.Option(
            "--analyzer",
            help="the analyzer_type, exactly as stored: llm, algorithmic, ... or an adopted"
            " one (qwen-3-4b-fp8, simplified_features, ...)",
        ),
    ],
    out_path: OutOption,
    version: Annotated[
        str | None,
        typer.Option("--version", help="only this model_version (default: every version)"),
    ] = None,
    fmt: FormatOption = None,
    chunk_size: ChunkOption = 5000,
    as_json: JsonOption = False,
) -> None:
    """One analyzer's results with each track's title and artist: themes as a list,
    scores as floats, analysis_data as JSON. An analyzer (or version) without results
    is an error (exit 2) naming those there are; no file is written."""
    from analyzer_runtime import export

    async def go(conn: Any, f: Any) -> Any:
        return await export.export_results(
            conn, analyzer, out_path, f, version=version, chunk_size=chunk_size
        )

    _report(_export(out_path, fmt, go), as_json)


@export_app.command("tracks")
def export_tracks(
    out_path: OutOption,
    fmt: FormatOption = None,
    chunk_size: ChunkOption = 5000,
    as_json: JsonOption = False,
) -> None:
    """Every track in id order: metadata and lyrics, spotify_data as JSON; without the
    embedding vectors. An empty corpus gives a file with no rows (exit 0)."""
    from analyzer_runtime import export

    async def go(conn: Any, f: Any) -> Any:
        return await export.export_tracks(conn, out_path, f, chunk_size=chunk_size)

    _report(_export(out_path, fmt, go), as_json)
