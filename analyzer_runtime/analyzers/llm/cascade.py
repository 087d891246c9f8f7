"""The cascade (`spec.llm.cascade`, issue 25): a cheap analyzer labels the tracks it is
sure of; only the rest are sent to the LLM.

The first analyzer is `quality` (the distilled model, trained with its sentiment head:
quality/agreement.py) or `algorithmic` (VADER). Each gives a track a sentiment and a
`confidence`; a track is KEPT - not sent to the LLM - when the first analyzer labelled
it (`done`, with a sentiment and a confidence) and its confidence is at least
`minConfidence`. Everything else goes to the LLM: a lower confidence, no stored
features (the quality model reads the track's algorithmic and emotion results), empty
lyrics (the LLM lane skips them as before), or an error in the first analyzer.

The confidence rule, per first analyzer:
- quality: min(p_sentiment, p_quality), the model's calibrated estimate that the LLM
  would give the same sentiment and a quality within +-1 (quality/agreement.py);
- algorithmic: its own sentiment confidence (VADER strength and lexicon coverage). It
  labels positive/negative/neutral only, never mixed, and on the seeded corpus agrees
  with the LLM far less than the quality model (bench/RESULTS.md): it is offered for
  corpora where VADER is known to match the LLM.

A kept track's result is the first analyzer's own, stored under ITS analyzer_type and
version (never as an LLM result), with analysis_data.cascade_for = {analyzer: "llm",
model_version, confidence, threshold}. So a later llm run with selection.onlyMissing
still finds the track missing an LLM result.

Both LLM lanes call `Cascade.split` on a batch before any request is built.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analyzer_runtime import metrics
from analyzer_runtime.analyzers import registry
from analyzer_runtime.analyzers.base import Analyzer, ItemOutcome, RunContext, TrackInput
from analyzer_runtime.contract.llm_models import CascadeOptions
from analyzer_runtime.ledger.models import require_head

if TYPE_CHECKING:
    import asyncpg

    from analyzer_runtime.ledger.shards import Run

log = logging.getLogger(__name__)


@dataclass
class CascadeSplit:
    """What the cascade did with a batch: the outcomes of the tracks it kept (`done`,
    results under the first analyzer's type) and the tracks to send to the LLM."""

    kept: list[ItemOutcome] = field(default_factory=list)
    to_llm: list[TrackInput] = field(default_factory=list)


def keeps(outcome: ItemOutcome | None, threshold: float) -> bool:
    """The split rule: a labelled track whose confidence reaches the threshold."""
    if outcome is None or outcome.status != "done" or outcome.result is None:
        return False
    r = outcome.result
    return r.sentiment is not None and r.confidence is not None and r.confidence >= threshold


def split_outcomes(
    tracks: Sequence[TrackInput],
    outcomes: Sequence[ItemOutcome],
    threshold: float,
    llm_version: str,
) -> CascadeSplit:
    """Pure: apply the rule to the first analyzer's outcomes for `tracks`; the kept
    results get `cascade_for`, the others' tracks go to the LLM in input order."""
    by_id = {o.track_id: o for o in outcomes}
    out = CascadeSplit()
    for t in tracks:
        o = by_id.get(t.id)
        if o is not None and keeps(o, threshold):
            assert o.result is not None
            o.result.analysis_data["cascade_for"] = {
                "analyzer": "llm",
                "model_version": llm_version,
                "confidence": o.result.confidence,
                "threshold": threshold,
            }
            out.kept.append(o)
        else:
            out.to_llm.append(t)
    return out


async def run_labels(
    conn: asyncpg.Connection, run: Run
) -> dict[int, tuple[str | None, float | None]]:
    """(sentiment, quality) of each done track of llm run `run`: its LLM result, or the
    result its cascade kept (any analyzer_type, cascade_for naming the run's version)."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (i.item_id) i.item_id, r.sentiment,
                  (r.analysis_data->>'quality')::float8 AS quality
             FROM run_items i
             JOIN analysis_results r ON r.track_id = i.item_id
              AND ((r.analyzer_type = 'llm' AND r.model_version = $2)
                   OR r.analysis_data->'cascade_for'->>'model_version' = $2)
            WHERE i.run_id = $1 AND i.state = 'done'
            ORDER BY i.item_id, (r.analyzer_type = 'llm') DESC""",
        run.id,
        run.model_version,
    )
    return {r["item_id"]: (r["sentiment"], r["quality"]) for r in rows}


class Cascade:
    """The first analyzer of one shard, created and attached once (LLMAnalyzer.attach)."""

    def __init__(self, options: CascadeOptions, llm_version: str, first: Analyzer) -> None:
        self.analyzer_name = str(options.analyzer)
        self.threshold = options.min_confidence
        self.llm_version = llm_version
        self.first = first
        for route in metrics.LLM_CASCADE_ROUTES:  # at 0, so rate() answers at once
            metrics.LLM_CASCADE.labels(llm_version, route)

    @classmethod
    def create(cls, options: CascadeOptions, llm_version: str) -> Cascade:
        return cls(options, llm_version, registry.create(str(options.analyzer)))

    async def attach(self, ctx: RunContext) -> None:
        # The first analyzer writes under its own version, not the LLM's; the quality
        # analyzer loads the model pinned for this run at planning (run_models).
        await self.first.attach(dataclasses.replace(ctx, model_version=None))
        model = getattr(self.first, "model", None)
        if model is not None:  # a pinned model without the head: refused, not ignored
            require_head(model)

    async def split(self, tracks: Sequence[TrackInput]) -> CascadeSplit:
        """The batch's kept outcomes and the tracks to send to the LLM; never raises
        for a track: what the first analyzer cannot label goes to the LLM."""
        labelled = [t for t in tracks if t.lyrics is not None and t.lyrics.strip()]
        outcomes: list[ItemOutcome] = []
        if labelled:
            try:
                outcomes = await self.first.analyze_batch(labelled)
            except Exception as exc:  # the LLM can still answer: never lose the batch
                log.warning(
                    "cascade analyzer %s failed on a batch (%s: %s): all %d tracks go to the LLM",
                    self.analyzer_name, type(exc).__name__, exc, len(tracks),
                )  # fmt: skip
        out = split_outcomes(tracks, outcomes, self.threshold, self.llm_version)
        metrics.LLM_CASCADE.labels(self.llm_version, "kept").inc(len(out.kept))
        metrics.LLM_CASCADE.labels(self.llm_version, "sent").inc(len(out.to_llm))
        return out

    async def aclose(self) -> None:
        await self.first.aclose()
