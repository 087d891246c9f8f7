"""Formatting of AnalysisRun status values (times, durations, progress) and the
plain-text status block the CLI prints; shared by `analyzer_runtime.contract.status`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Wording:
    """How a kind of run names its work items in status messages (the status logic is
    shared by AnalysisRun and ScrapeJob; only these words differ)."""

    items: str = "tracks"
    nothing: str = "the selection matched no tracks"
    kept: str = (
        "; results already written are kept, and a new run with selection.onlyMissing "
        "analyzes the remaining tracks"
    )
    # Formatted with failed= and total=.
    some_failed: str = (
        "{failed} of {total} tracks failed after all attempts and have no result; "
        "a new run with selection.onlyMissing: true (the default) retries exactly those "
        "tracks"
    )
    none_failed: str = "no track failed"


ANALYSIS_WORDING = Wording()
SCRAPE_WORDING = Wording(
    items="artists",
    nothing="the job has no artists",
    kept="; tracks already scraped are kept, and a new ScrapeJob over the same artists "
    "adds only the songs still missing",
    some_failed="{failed} of {total} artists failed (status.failedArtists says why); the "
    "songs of the other artists are in the corpus",
    none_failed="no artist failed",
)


def format_time(dt: datetime | None) -> str | None:
    """ISO 8601 UTC with Z, second precision (like metav1.Time); naive means UTC."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """Parse a timestamp written by format_time (or any ISO 8601 form)."""
    if not text:
        return None
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def format_duration(seconds: float) -> str:
    """Go-style short duration, rounded up to whole seconds: 3m12s, 1h2m0s, 45s, 0s."""
    total = max(0, math.ceil(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def format_progress(finished: int, total: int, *, complete: bool = False) -> str:
    """`"1234/5000 (24.7%)"`. `finished` counts every item that is through: processed,
    failed and skipped. The percentage rounds to one decimal but never shows 100.0%
    before the last item; an empty run reads "0/0 (0.0%)" until it has succeeded,
    then "0/0 (100.0%)" (nothing to do is all done)."""
    if total <= 0:
        return f"{finished}/{total} ({100.0 if complete else 0.0:.1f}%)"
    pct = round(100.0 * finished / total, 1)
    if finished < total:
        pct = min(pct, 99.9)
    return f"{finished}/{total} ({pct:.1f}%)"


def render_status_text(
    status: Mapping[str, Any], *, name: str | None = None, max_shards: int = 50
) -> str:
    """A plain-text block of a status, as the CLI prints it at the end of a run."""
    lines: list[str] = []

    def row(label: str, value: Any) -> None:
        lines.append(f"{label + ':':<12}{value}")

    if name:
        row("Run", name)
    row("Phase", status.get("phase", "Unknown"))
    row("Progress", status.get("progress", "-"))
    row(
        "Tracks",
        f"{status.get('processed', 0)} processed, {status.get('failed', 0)} failed, "
        f"{status.get('skipped', 0)} skipped (total {status.get('total', 0)})",
    )
    if status.get("throughput") is not None:
        row("Throughput", f"{status['throughput']:.2f} tracks/s")
    if status.get("eta"):
        row("ETA", status["eta"])
    if status.get("startTime"):
        row("Started", status["startTime"])
    if status.get("completionTime"):
        took = ""
        start, end = parse_time(status.get("startTime")), parse_time(status["completionTime"])
        if start and end:
            took = f" (took {format_duration((end - start).total_seconds())})"
        row("Completed", status["completionTime"] + took)
    if status.get("tokens"):
        t = status["tokens"]
        cost = status.get("estimatedCost")
        extra = f", ~${cost:.4f}" if cost is not None else ""
        row("Tokens", f"{t['total']} ({t['prompt']} prompt, {t['completion']} completion{extra})")
    if est := status.get("estimate"):
        cost = f", ~${est['cost']:.4f}" if est.get("cost") is not None else ""
        rate = f" at {est['requestsPerMinute']}/min" if est.get("requestsPerMinute") else ""
        if est.get("completionWindow"):
            rate = f" (batch: within its {est['completionWindow']} window, at the batch price)"
        row(
            "Estimate",
            f"{est['requests']} requests, ~{est['tokens']['total']} tokens{cost},"
            f" ~{est['duration']}{rate}",
        )
        if ce := est.get("cascade"):
            share = ce.get("keptShare")
            kept = (
                f"~{share:.0%} of the tracks expected to stay with it (its training's"
                " out-of-fold share)"
                if share is not None
                else "an unknown share kept"
            )
            after = f"; ~${ce['cost']:.4f} with it" if ce.get("cost") is not None else ""
            row("  cascade", f"{ce['analyzer']} first at {ce['minConfidence']:g}: {kept}{after}")
    if ca := status.get("cascade"):
        saved = f", ~${ca['costSaved']:.4f} saved" if ca.get("costSaved") is not None else ""
        row(
            "Cascade",
            f"{ca['kept']} tracks kept by {ca['analyzer']}, {ca['sentToLLM']} sent to the LLM"
            f"{saved}",
        )
    if lb := status.get("llmBatches"):
        req = lb["requests"]
        row(
            "Batches",
            f"{lb['batches']} ({lb['inFlight']} in flight, {lb['collected']} collected);"
            f" requests {req['completed']}/{req['total']} answered, {req['failed']} failed",
        )
    if status.get("fallbackUsed"):
        row("Fallback", f"{status['fallbackUsed']} tracks by the fallback analyzer")
    if status.get("jobName"):
        row("Job", status["jobName"])
    lines.extend(_shard_lines(status.get("shards"), max_shards))
    notable = [
        c
        for c in status.get("conditions") or []
        if (c.get("status") == "True" and c.get("type") != "Valid")
        or c.get("type") == "Succeeded"
        or (c.get("type") == "Valid" and c.get("status") != "True")
    ]
    if notable:
        lines.append("Conditions:")
        for c in notable:
            lines.append(f"  {c['type']}={c['status']} ({c.get('reason')}): {c.get('message')}")
    return "\n".join(lines)


_SHARD_STATES = ("done", "running", "retrying", "failed", "pending")


def _shard_lines(shards: Any, max_shards: int) -> list[str]:
    """The "Shards:" part of the status block: counts and index ranges per state, then
    the shards the status details (all of a small run) as a table."""
    if not shards:
        return []
    if isinstance(shards, list):  # a status written before status.shards was compact
        shards = {"total": len(shards), "detail": shards}
    total = int(shards.get("total") or 0)
    groups = [
        f"{g['count']} {state}" + (f" ({g['indexes']})" if g.get("indexes") else "")
        for state in _SHARD_STATES
        if (g := shards.get(state)) and g.get("count")
    ]
    lines = [f"{'Shards:':<12}{total}" + (": " + ", ".join(groups) if groups else "")]
    detail = list(shards.get("detail") or [])[:max_shards]
    if not detail:
        return lines
    lines.append(f"  {'SHARD':<6}{'STATE':<10}{'PROGRESS':<16}{'FAILED':<8}{'SKIPPED':<9}ATTEMPT")
    for sh in detail:
        lines.append(
            f"  {sh['index']:<6}{sh['state']:<10}{sh['progress']:<16}{sh['failed']:<8}"
            f"{sh['skipped']:<9}{sh['attempt']}"
        )
        if sh.get("message"):
            lines.append(f"        {sh['message']}")
    if total > len(detail):
        lines.append(f"  ... {total - len(detail)} more shards (counted above)")
    return lines
