"""Asking a run's sampled tracks again (`report llm --consistency N --repeats K`):
the run's own llm settings, through the same LLMAnalyzer and client the run used
(its packing, concurrency, retries, thinking switch and global rate limit), so the
repeats measure the model as the run used it. This spends tokens: the cost is
reported with the numbers.

Nothing is stored: the repeats are compared with the stored answers and dropped. The
run's cascade, batch lane and fallback are left out - a repeat is an LLM answer through
the synchronous API, or none."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from analyzer_runtime.analyzers.base import RunContext, TrackInput
from analyzer_runtime.reports import ReportError
from analyzer_runtime.reports.label_quality import Answer, Repeated

# Options of the run's llm spec a repeat does not use (see the module docstring).
NOT_REPEATED = ("cascade", "mode", "batch")


def repeat_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The run's spec as the repeats use it: no fallback, cascade or batch lane."""
    llm = {k: v for k, v in (spec.get("llm") or {}).items() if k not in NOT_REPEATED}
    return {k: v for k, v in spec.items() if k != "fallbackAnalyzer"} | {"llm": llm}


async def ask_again(
    pool: asyncpg.Pool,
    run: dict[str, Any],
    sample: Sequence[dict[str, Any]],
    repeats: int,
) -> tuple[list[Repeated], dict[str, Any]]:
    """(each sampled track with its stored and repeated answers, the repeats' tokens
    and cost). `sample`: data.consistency_sample's rows."""
    from analyzer_runtime.analyzers.llm.analyzer import LLMAnalyzer

    spec = repeat_spec(run["spec"])
    try:
        analyzer = LLMAnalyzer(**spec["llm"])
        await analyzer.attach(
            RunContext(pool, run["id"], -1, spec, model_version=run["model_version"])
        )
    except ValueError as exc:  # no API key, or settings this version cannot resolve
        raise ReportError(f"--consistency cannot ask the provider: {exc}") from None
    tracks = [TrackInput(s["id"], s["title"], s["artist"], s["lyrics"]) for s in sample]
    samples = {
        s["id"]: Repeated(s["id"], Answer(s["sentiment"], list(s["themes"]))) for s in sample
    }
    try:
        for _ in range(repeats):
            for o in await analyzer.analyze_batch(tracks):
                r = o.result
                ok = o.status == "done" and r is not None and r.analyzer_type == "llm"
                samples[o.track_id].repeats.append(
                    Answer(str(r.sentiment), list(r.themes)) if ok and r is not None else None
                )
        extras = analyzer.take_extras()
    finally:
        await analyzer.aclose()
    pricing = analyzer.resolved.pricing
    cost = (
        pricing.cost(extras.tokens_prompt, extras.tokens_completion, extras.tokens_cached)
        if pricing is not None
        else None
    )
    tokens = {
        "prompt": extras.tokens_prompt,
        "completion": extras.tokens_completion,
        "cached": extras.tokens_cached,
        "cost_usd": round(cost, 6) if cost is not None else None,
    }
    return list(samples.values()), tokens
