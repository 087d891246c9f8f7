"""The original platform's analyzers, and how their stored labels read as this
project's (issue 21).

`rap-analyzer db adopt` keeps the legacy analyzer_type names as they are: they are
the users' history. Their rows are not in this project's formats, so whatever reads
labels across analyzers - `report trends`, `report llm --analyzer`, `model train
quality --from-analyzer` - reads them through the SQL expressions below, which give
this project's own `llm` rows unchanged and map the legacy answers:

| label | this project's `llm` row | a legacy LLM row (the original Qwen prompt) |
|---|---|---|
| sentiment | the `sentiment` column | `analysis_data.mood_analysis.valence` when it is positive/negative/neutral/mixed, else the `sentiment` column |
| themes | the `themes` column | the `themes` column, or `analysis_data.content_analysis.main_themes` when the column is empty |
| quality (1-10) | `analysis_data.quality` | `analysis_data.quality_metrics.overall_quality` (0-1) as 1 + 9 x q |
| complexity (0-1) | the `complexity_score` column | the column when set, else `analysis_data.technical_analysis.complexity_level`: beginner/basic/simple 0.25, intermediate/moderate/medium 0.5, advanced/complex 0.75, expert 1.0 |

Why those paths: the original platform's Qwen analyzer asked for exactly that JSON
(genre/mood/content/technical/quality_metrics/cultural sections) and stored the
parsed answer as `analysis_data`; its `sentiment` and `themes` columns were filled
from keys that answer did not have (so mostly 'neutral' and []), and its
`complexity_score` was a constant 3.0 (out of range: adopt sets it NULL, keeping
3.0 in analysis_data). A value that is missing, of another JSON type or out of range
is no label (NULL), never an error: legacy analysis_data is free-form.
"""

from __future__ import annotations

LLM = "llm"  # this project's analyzer_type for LLM labels

# analyzer_type -> what it was (docs/guides/adopting-a-corpus.md, "Legacy labels").
LEGACY_ANALYZERS: dict[str, str] = {
    "qwen-3-4b-fp8": LLM,  # Qwen3-4B FP8 via Novita: the platform's primary model
    "gemma-3-27b-it": LLM,
    "ollama:llama3.2:3b": LLM,
    "simplified_features": "algorithmic",  # its own rule-based features, not ours
    "simplified_features_v2": "algorithmic",
    "emotion_analyzer_v2": "emotion",  # a transformer emotion model, not NRC
    "mock_analyzer_v1": "mock",  # test rows
}
LEGACY_LLM_ANALYZERS: tuple[str, ...] = tuple(n for n, k in LEGACY_ANALYZERS.items() if k == LLM)
# What `report trends` counts as LLM labels by default; for a track with several, the
# first in this order wins (this project's own llm before the legacy ones).
DEFAULT_LLM_ANALYZERS: tuple[str, ...] = (LLM, *LEGACY_LLM_ANALYZERS)

SENTIMENTS = ("positive", "negative", "neutral", "mixed")
COMPLEXITY_LEVELS: dict[str, float] = {
    "beginner": 0.25, "basic": 0.25, "simple": 0.25,
    "intermediate": 0.5, "moderate": 0.5, "medium": 0.5,
    "advanced": 0.75, "complex": 0.75,
    "expert": 1.0,
}  # fmt: skip

LABEL_SOURCES = {
    "quality": "analysis_data.quality (1-10), or analysis_data.quality_metrics.overall_quality"
    " (0-1, as 1 + 9q)",
    "complexity": "the complexity_score column (0-1), or"
    " analysis_data.technical_analysis.complexity_level (beginner .. expert)",
}


def json_number(t: str, *path: str, lo: float, hi: float) -> str:
    """The JSON number at `path` of t.analysis_data when it lies in [lo, hi], else NULL
    (a string, an object or an absent key is no number; nothing here can raise)."""
    ref = f"{t}.analysis_data" + "".join(f"->'{p}'" for p in path)
    return (
        f"CASE WHEN jsonb_typeof({ref}) = 'number' THEN"
        f" CASE WHEN ({ref})::numeric BETWEEN {lo} AND {hi}"
        f" THEN ({ref})::numeric::float8 END END"
    )


def quality_sql(t: str = "r") -> str:
    """The 1-10 quality label of result row `t` (float8 or NULL)."""
    own = json_number(t, "quality", lo=1, hi=10)
    legacy = json_number(t, "quality_metrics", "overall_quality", lo=0, hi=1)
    return f"coalesce({own}, 1 + 9 * ({legacy}))"


def complexity_sql(t: str = "r") -> str:
    """The 0-1 complexity label of result row `t` (float8 or NULL)."""
    level = f"lower(btrim({t}.analysis_data->'technical_analysis'->>'complexity_level'))"
    cases = " ".join(f"WHEN '{k}' THEN {v}" for k, v in COMPLEXITY_LEVELS.items())
    return (
        f"coalesce(CASE WHEN {t}.complexity_score BETWEEN 0 AND 1"
        f" THEN {t}.complexity_score::float8 END, CASE {level} {cases} END::float8)"
    )


def sentiment_sql(t: str = "r") -> str:
    """The sentiment label of result row `t` (text or NULL)."""
    valence = f"lower(btrim({t}.analysis_data->'mood_analysis'->>'valence'))"
    known = ", ".join(f"'{s}'" for s in SENTIMENTS)
    return f"CASE WHEN {valence} IN ({known}) THEN {valence} ELSE {t}.sentiment END"


def themes_sql(t: str = "r") -> str:
    """The themes of result row `t`: a jsonb array (possibly empty) or NULL, never
    another JSON type (so jsonb_array_elements over it cannot fail)."""
    main = f"{t}.analysis_data->'content_analysis'->'main_themes'"
    return (
        f"CASE WHEN jsonb_typeof({t}.themes) = 'array' AND {t}.themes <> '[]'::jsonb"
        f" THEN {t}.themes WHEN jsonb_typeof({main}) = 'array' THEN {main}"
        f" WHEN jsonb_typeof({t}.themes) = 'array' THEN {t}.themes END"
    )
