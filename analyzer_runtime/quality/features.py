"""The feature vector of a track, read from its stored results (never recomputed).

Block `base` (always): numeric fields of the track's `algorithmic` and `emotion`
analysis_data at their current versions (ANALYZER_VERSIONS), in the order of
BASE_FEATURES. Block `embedding` (optional): the 384 numbers of its vector in
track_embeddings for EMBEDDING_MODEL; training uses it only when every labelled track
has one, and a model trained with it needs it for every track it scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np

from analyzer_runtime.analyzers.lexicons import THEMES
from analyzer_runtime.contract.types import AnalyzerName, fixed_versions

ALGORITHMIC_VERSION = fixed_versions(AnalyzerName.algorithmic)[-1]
EMOTION_VERSION = fixed_versions(AnalyzerName.emotion)[-1]
EMBEDDING_DIM = 384

# (feature name, path into algorithmic analysis_data)
_ALGORITHMIC: list[tuple[str, tuple[str, ...]]] = [
    ("alg.word_count", ("word_count",)),
    ("alg.unique_words", ("unique_words",)),
    ("alg.bar_count", ("bar_count",)),
    ("alg.sentiment_compound", ("sentiment", "compound")),
    ("alg.sentiment_coverage", ("sentiment", "coverage")),
    ("alg.rhyme_density", ("rhyme", "density")),
    ("alg.rhymed_bars", ("rhyme", "rhymed_bars")),
    ("alg.ttr", ("lexical", "ttr")),
    ("alg.mattr", ("lexical", "mattr")),
    ("alg.syllables_per_bar", ("syllables", "per_bar")),
    ("alg.syllables_per_word", ("syllables", "per_word")),
    ("alg.multisyllabic_share", ("syllables", "multisyllabic_share")),
    ("alg.repeated_line_ratio", ("repetition", "repeated_line_ratio")),
    ("alg.repeated_trigram_ratio", ("repetition", "repeated_trigram_ratio")),
    ("alg.hook_count", ("repetition", "hook_count")),
    ("alg.profanity_ratio", ("profanity", "ratio")),
    ("alg.complexity", ("complexity",)),
    *((f"alg.theme_{t}", ("themes", t)) for t in THEMES),
]
_EMOTION_AFFECTS = (
    "anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust",
    "positive", "negative",
)  # fmt: skip
_EMOTION: list[tuple[str, tuple[str, ...]]] = [
    ("emo.coverage", ("coverage",)),
    ("emo.polarity", ("polarity",)),
    ("emo.confidence", ("confidence",)),
    ("emo.dominant_share", ("dominant_share",)),
    *((f"emo.{a}", ("scores", a)) for a in _EMOTION_AFFECTS),
]
BASE_FEATURES: list[str] = [n for n, _ in _ALGORITHMIC] + [n for n, _ in _EMOTION]


def embedding_features() -> list[str]:
    return [f"emb.{i}" for i in range(EMBEDDING_DIM)]


def embedding_model() -> str:
    from analyzer_runtime.embedding.model import MODEL_NAME

    return MODEL_NAME


def _get(data: dict[str, Any], path: tuple[str, ...]) -> float:
    cur: Any = data
    for key in path:
        if not isinstance(cur, dict):
            return float("nan")
        cur = cur.get(key)
    return (
        float(cur) if isinstance(cur, int | float) and not isinstance(cur, bool) else float("nan")
    )


def base_vector(algorithmic: dict[str, Any], emotion: dict[str, Any]) -> list[float]:
    return [_get(algorithmic, p) for _, p in _ALGORITHMIC] + [_get(emotion, p) for _, p in _EMOTION]


@dataclass
class FeatureRows:
    """Features of the tracks asked for that have them, and why the others do not."""

    ids: list[int]
    matrix: np.ndarray
    missing: dict[int, str] = field(default_factory=dict)  # track id -> what is missing


def _json(raw: Any) -> dict[str, Any]:
    return dict(json.loads(raw) if isinstance(raw, str) else raw or {})


async def read_features(
    conn: asyncpg.Connection, track_ids: Sequence[int], *, with_embedding: bool
) -> FeatureRows:
    """The feature rows of `track_ids` (in that order) from their stored results."""
    rows = await conn.fetch(
        """SELECT t.id,
                  a.analysis_data AS alg, e.analysis_data AS emo,
                  CASE WHEN $5 THEN v.embedding END AS vec
             FROM unnest($1::int[]) WITH ORDINALITY AS t(id, ord)
             LEFT JOIN analysis_results a
                    ON a.track_id = t.id AND a.analyzer_type = 'algorithmic'
                   AND a.model_version = $2
             LEFT JOIN analysis_results e
                    ON e.track_id = t.id AND e.analyzer_type = 'emotion'
                   AND e.model_version = $3
             LEFT JOIN track_embeddings v ON $5 AND v.track_id = t.id AND v.model = $4
            ORDER BY t.ord""",
        list(track_ids),
        ALGORITHMIC_VERSION,
        EMOTION_VERSION,
        embedding_model() if with_embedding else "",
        with_embedding,
    )
    ids: list[int] = []
    vectors: list[list[float]] = []
    missing: dict[int, str] = {}
    for r in rows:
        lacks = [
            name
            for name, present in (
                ("algorithmic", r["alg"] is not None),
                ("emotion", r["emo"] is not None),
                ("embedding", not with_embedding or r["vec"] is not None),
            )
            if not present
        ]
        if lacks:
            missing[r["id"]] = " and ".join(lacks)
            continue
        vec = base_vector(_json(r["alg"]), _json(r["emo"]))
        if with_embedding:
            raw = r["vec"]
            raw = raw.to_numpy() if hasattr(raw, "to_numpy") else raw  # pgvector's Vector
            vec += [float(x) for x in np.asarray(raw, dtype=np.float32)]
        ids.append(r["id"])
        vectors.append(vec)
    width = len(BASE_FEATURES) + (EMBEDDING_DIM if with_embedding else 0)
    matrix = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), width)
    return FeatureRows(ids, matrix, missing)


async def all_have_embeddings(conn: asyncpg.Connection, track_ids: Sequence[int]) -> bool:
    """Whether every one of `track_ids` has an embedding (the optional block)."""
    if not track_ids:
        return False
    exists = await conn.fetchval("SELECT to_regclass('track_embeddings') IS NOT NULL")
    if not exists:
        return False
    n = await conn.fetchval(
        "SELECT count(*) FROM track_embeddings WHERE track_id = ANY($1::int[]) AND model = $2",
        list(track_ids),
        embedding_model(),
    )
    return bool(n == len(set(track_ids)))
