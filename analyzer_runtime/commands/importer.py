"""`rap-analyzer import FILE`: a lyrics dataset into tracks (analyzer_runtime.corpus_import)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from analyzer_runtime.commands.common import EXIT_INVALID, _fail, _migrate, _with_db, err, out
from analyzer_runtime.ledger.connect import pool_for


def import_cmd(
    file: Annotated[
        Path, typer.Argument(help="CSV/TSV (.gz too), JSON Lines, Parquet or SQLite file")
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FMT",
            help="csv, tsv, jsonl, parquet or sqlite (default: from the file's extension)",
        ),
    ] = None,
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="COLUMN=FIELD",
            help="read FIELD from COLUMN (repeatable); FIELD 'skip' ignores a known column."
            " Fields: title, artist, lyrics, release_date, album, url, genius_id, language,"
            " genre, views, features, explicit, song_art_url, popularity_score,"
            " lyrics_quality_score, scraped_date, spotify_data",
        ),
    ] = None,
    on_conflict: Annotated[
        str,
        typer.Option(
            "--on-conflict",
            metavar="skip|update",
            help="a track already there (same Genius id, else same artist and title):"
            " keep it (skip) or overwrite the file's fields in it (update)",
        ),
    ] = "skip",
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            dir_okay=False,
            help="where rejected rows are listed, .csv or .jsonl (default: FILE.rejects.csv)",
        ),
    ] = None,
    table: Annotated[str, typer.Option("--table", help="SQLite: the table to read")] = "tracks",
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="rows per transaction")
    ] = 5000,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress", help="progress bar (default: when stderr is a terminal)"
        ),
    ] = None,
) -> None:
    """Import lyrics from a CSV, JSON Lines, Parquet or SQLite file into tracks.

    Idempotent: a track already there (same Genius id, else same artist and title) is
    skipped, or updated with --on-conflict update; one transaction per chunk. Rows that
    cannot go in are listed in a rejects file; the others still go in.

    Exit codes: 0 imported (rejected rows included: see the summary), 2 unusable input
    (unreadable file, unknown format, a bad --map, no title or artist column), 3 database
    unreachable."""
    from rich.markup import escape

    from analyzer_runtime.corpus_import.mapping import MappingError, parse_map_options
    from analyzer_runtime.corpus_import.pipeline import (
        ImportInputError,
        Summary,
        prepare,
        run_import,
    )

    if on_conflict not in ("skip", "update"):
        raise _fail(f"--on-conflict {escape(on_conflict)!r}: use skip or update", EXIT_INVALID)
    conflict: Literal["skip", "update"] = "update" if on_conflict == "update" else "skip"
    if fmt is not None:
        fmt = fmt.lower()
    try:
        prep = prepare(
            file, fmt=fmt, maps=parse_map_options(maps or []), rejects=rejects, table=table
        )
    except (ImportInputError, MappingError) as exc:
        raise _fail(escape(str(exc)), EXIT_INVALID) from None
    if not as_json:
        err.print(escape(prep.mapping.describe()), highlight=False, soft_wrap=True)
    show = err.is_terminal if progress is None else progress

    async def go(url: str) -> Summary:
        await _migrate(url)
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            with _ProgressBar(show, prep.reader.unit) as on_progress:
                return await run_import(
                    conn,
                    prep,
                    on_conflict=conflict,
                    chunk_rows=chunk_size,
                    on_progress=on_progress,
                )

    try:
        summary = _with_db(go)
    except ImportInputError as exc:
        raise _fail(escape(str(exc)), EXIT_INVALID) from None
    finally:
        prep.close()
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        out.print(_text(summary), highlight=False, soft_wrap=True)
    if summary.rejected:
        reasons = ", ".join(f"{n} {r}" for r, n in summary.rejected_by_reason.items())
        err.print(
            escape(f"{summary.rejected} row(s) rejected ({reasons}): see {summary.rejects_file}"),
            highlight=False,
            soft_wrap=True,
        )


def _text(s: Any) -> str:
    from rich.markup import escape

    return escape(
        f"imported {s.file} ({s.format}): {s.read:,} rows read in {s.seconds:.1f}s"
        f" ({s.rows_per_s:,.0f} rows/s): {s.inserted:,} inserted, {s.updated:,} updated,"
        f" {s.skipped_existing:,} already there, {s.duplicates_in_file:,} duplicates in the"
        f" file, {s.rejected:,} rejected"
    )


class _ProgressBar:
    """A rich progress bar on stderr (rows, rows/s, rejects), or nothing."""

    def __init__(self, show: bool, unit: str) -> None:
        self.show, self.unit = show, unit
        self._progress: Any = None

    def __enter__(self) -> Any:
        if not self.show:
            return None
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]import"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]} rows  {task.fields[rate]} rows/s  {task.fields[bad]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self._progress.__enter__()
        task = self._progress.add_task("import", total=None, rows="0", rate="-", bad="")

        def update(p: Any) -> None:
            self._progress.update(
                task,
                total=p.total,
                completed=p.position,
                rows=f"{p.read:,}",
                rate=f"{p.read / p.seconds:,.0f}" if p.seconds else "-",
                bad=f"{p.rejected:,} rejected" if p.rejected else "",
            )

        return update

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
