"""The planning-time estimate of an llm run: requests, tokens, cost, duration, and the
share its cascade is expected to keep from the LLM.

Computed once, right after planning and before any request, from the planned items
and the lengths of their lyrics (one aggregate query), with the same rules the
analyzer follows: empty lyrics are skipped, lyrics are truncated to the token
budget, each shard packs its batches `tracksPerRequest` tracks at a time.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

from analyzer_runtime.contract import llm_presets
from analyzer_runtime.contract.llm_models import CascadeOptions
from analyzer_runtime.contract.llm_presets import ResolvedLLM, requests_per_minute
from analyzer_runtime.contract.models import LLMOptions
from analyzer_runtime.contract.status import format_duration
from analyzer_runtime.ledger import batches as batch_ledger

if TYPE_CHECKING:
    import asyncpg

    from analyzer_runtime.ledger.models import StoredModel
    from analyzer_runtime.ledger.shards import Run

SYSTEM_TOKENS = llm_presets.SYSTEM_PROMPT_TOKENS


def cached_per_request(resolved: ResolvedLLM) -> int:
    """Prompt tokens each request after the first is expected to have served from the
    provider's prompt cache: the static prefix (the system prompt, the same bytes in
    every request; analyzers/llm/prompt.py) in the provider's steps, if it reaches the minimum.
    OpenAI's minimum is 1,024 tokens, more than our ~270-token prefix: 0 there."""
    if resolved.prompt_cache is None:
        return 0
    minimum, step = resolved.prompt_cache
    static = SYSTEM_TOKENS + llm_presets.TEMPLATE_OVERHEAD_TOKENS
    return static // step * step if static >= minimum else 0


def requests_for(n_tracks: int, batch_size: int, k: int) -> int:
    """Requests for one shard: whole batches of `batch_size`, each cut into packs of k."""
    full, rest = divmod(n_tracks, batch_size)
    return full * math.ceil(batch_size / k) + math.ceil(rest / k)


async def estimate_run(
    conn: asyncpg.Connection, run: Run, options: LLMOptions, resolved: ResolvedLLM
) -> dict[str, Any]:
    budget = options.max_input_tokens or llm_presets.DEFAULT_MAX_INPUT_TOKENS
    # Characters as sent: in the prompt's JSON document a line break is two (\n escaped).
    rows = await conn.fetch(
        """SELECT i.shard, count(*) AS n,
                  coalesce(sum(least(ceil((2 * length(t.lyrics)
                                           - length(replace(t.lyrics, E'\\n', '')))
                                          / $2::float8), $3)), 0)::bigint AS tok
             FROM run_items i JOIN tracks t ON t.id = i.item_id
            WHERE i.run_id = $1 AND t.lyrics IS NOT NULL AND btrim(t.lyrics) <> ''
            GROUP BY i.shard""",
        run.id,
        llm_presets.CHARS_PER_TOKEN,
        budget,
    )
    spec = run.spec
    k = options.tracks_per_request
    batch = int(spec.get("batchSize") or 50)
    tracks = sum(int(r["n"]) for r in rows)
    if resolved.mode == "batch":  # a shard's batches pack all it claims, k per request
        requests = sum(math.ceil(int(r["n"]) / k) for r in rows)
    else:
        requests = sum(requests_for(int(r["n"]), batch, k) for r in rows)
    prompt_tokens = (
        requests * SYSTEM_TOKENS
        + sum(int(r["tok"]) for r in rows)
        + tracks * llm_presets.TRACK_OVERHEAD_TOKENS
    )
    completion_tokens = tracks * llm_presets.ESTIMATED_COMPLETION_TOKENS_PER_TRACK
    cached_tokens = max(0, requests - 1) * cached_per_request(resolved)
    rpm = requests_per_minute(spec, resolved)
    window = resolved.batch_window
    if window is not None:  # the provider promises no more than its completion window
        rpm = None
        seconds = batch_ledger.WINDOW_SECONDS.get(window, 0.0)
    elif rpm:
        seconds = requests / rpm * 60
    else:  # no budget: as fast as the pods' concurrency and the model's latency allow
        lanes = int(spec.get("parallelism") or spec.get("shards") or 1) * options.concurrency
        seconds = requests * resolved.latency_p50 / max(1, lanes)
    out: dict[str, Any] = {
        "requests": requests,
        "tracksPerRequest": k,
        "tokens": {
            "prompt": prompt_tokens,
            "completion": completion_tokens,
            "total": prompt_tokens + completion_tokens,
            **({"cached": cached_tokens} if cached_tokens else {}),
        },
        "duration": format_duration(seconds),
        "durationSeconds": round(seconds, 1),
    }
    if rpm:
        out["requestsPerMinute"] = rpm
    if window is not None:
        out["completionWindow"] = window
    if resolved.pricing is not None:  # the lane's price: a batch run's is discounted
        cost = resolved.pricing.cost(prompt_tokens, completion_tokens, cached_tokens)
        out["cost"] = round(cost, 6)
    return out


def kept_share(curve: list[dict[str, Any]], threshold: float) -> float | None:
    """The out-of-fold share kept at `threshold`, interpolated linearly along the stored
    curve (its thresholds ascending; clamped at its ends, as numpy.interp)."""
    if not curve:
        return None
    points = sorted((float(c["threshold"]), float(c["kept"])) for c in curve)
    if threshold <= points[0][0]:
        return round(points[0][1], 4)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if threshold <= x1:
            y = y0 if x1 == x0 else y0 + (y1 - y0) * (threshold - x0) / (x1 - x0)
            return round(y, 4)
    return round(points[-1][1], 4)


def cascade_estimate(
    options: CascadeOptions, model: StoredModel | None, cost: float | None
) -> dict[str, Any]:
    """status.estimate.cascade: the share the quality model kept out of fold at
    minConfidence when it was trained (its metrics), and the cost of the rest; the
    algorithmic analyzer's share is not known in advance."""
    out: dict[str, Any] = {
        "analyzer": str(options.analyzer),
        "minConfidence": options.min_confidence,
    }
    curve = ((model.metrics.get("sentiment") or {}).get("cascade_curve")) if model else None
    share = kept_share(curve or [], options.min_confidence)
    if share is not None:
        out["keptShare"] = share
        if cost is not None:
            out["cost"] = round(cost * (1 - share), 6)
    return out
