"""NRC emotion lexicon scores: the `emotion` analyzer.

The lexicon is the JSON file `nrclex` ships (`nrclex/data/nrc_en.json`, word ->
list of affects); we read it directly instead of calling `NRCLex`, which
tokenizes with TextBlob and would need NLTK corpora that are not installed.

For each word (see `text` for what a word is; looked up as
`text.normalize_word`, then as a singular ("fights" -> "fight", "enemies" ->
"enemy") if the word itself is missing) every affect it carries gets one hit. Then:

- ``scores[affect]`` = hits / words, for the 8 emotions and positive/negative;
- ``dominant`` = the emotion (not positive/negative) with the most hits; ties
  go to the earlier name in `EMOTIONS` (alphabetical); null with no hits;
- ``confidence`` = (dominant hits / all emotion hits) * min(1, lexicon-word
  share / 0.1) * min(1, words / 20): how clearly one emotion leads, damped
  when few words are in the lexicon or the text is very short;
- ``sentiment``: polarity = (positive - negative) / (positive + negative);
  positive above 0.1, negative below -0.1, else neutral (and neutral with no
  hits);
- ``themes``: emotions with hits, most first, at most 3.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from importlib import resources
from typing import Any

from analyzer_runtime.analyzers.base import AnalysisResult, ItemOutcome, LocalAnalyzer, TrackInput
from analyzer_runtime.analyzers.text import normalize_word, tokenize
from analyzer_runtime.contract.types import AnalyzerName, fixed_versions

EMOTIONS: tuple[str, ...] = (
    "anger",
    "anticipation",
    "disgust",
    "fear",
    "joy",
    "sadness",
    "surprise",
    "trust",
)
POLARITIES: tuple[str, ...] = ("positive", "negative")
POLARITY_MARGIN = 0.1
MAX_THEMES = 3

_LEXICON: dict[str, tuple[str, ...]] | None = None
_LOCK = threading.Lock()


def lexicon() -> dict[str, tuple[str, ...]]:
    """word -> affects, from the NRC file inside the installed nrclex package."""
    global _LEXICON
    if _LEXICON is None:
        with _LOCK:
            if _LEXICON is None:
                path = resources.files("nrclex.data").joinpath("nrc_en.json")
                with path.open("r", encoding="utf-8") as fh:
                    raw: dict[str, list[str]] = json.load(fh)
                _LEXICON = {w.lower(): tuple(a) for w, a in raw.items() if a}
    return _LEXICON


def affects_of(word: str, lex: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    w = normalize_word(word)
    found = lex.get(w)
    if found is None and len(w) > 3 and w.endswith("s"):
        # NRC lists mostly singular forms: "fights" -> "fight", "enemies" -> "enemy"
        found = lex.get(w[:-3] + "y") if w.endswith("ies") else lex.get(w[:-1])
    return found or ()


def emotion_features(text: str) -> dict[str, Any]:
    """All emotion features of one text; `analysis_data` of the analyzer."""
    lex = lexicon()
    words = tokenize(text)
    n = len(words)
    hits: Counter[str] = Counter()
    matched = 0
    per_word: dict[str, tuple[str, ...]] = {}  # a track repeats words a lot
    for w in words:
        affects = per_word.get(w)
        if affects is None:
            affects = affects_of(w, lex)
            per_word[w] = affects
        if affects:
            matched += 1
            hits.update(affects)
    emo_hits = {e: hits[e] for e in EMOTIONS}
    total_emo = sum(emo_hits.values())
    dominant: str | None = None
    if total_emo:
        dominant = max(EMOTIONS, key=lambda e: (emo_hits[e], -EMOTIONS.index(e)))
    coverage = matched / n if n else 0.0
    confidence = 0.0
    if dominant is not None:
        share = emo_hits[dominant] / total_emo
        confidence = share * min(1.0, coverage / 0.1) * min(1.0, n / 20)
    pos, neg = hits["positive"], hits["negative"]
    polarity = (pos - neg) / (pos + neg) if pos + neg else 0.0
    if polarity > POLARITY_MARGIN:
        label = "positive"
    elif polarity < -POLARITY_MARGIN:
        label = "negative"
    else:
        label = "neutral"
    ranked = sorted((e for e in EMOTIONS if emo_hits[e]), key=lambda e: -emo_hits[e])
    return {
        "word_count": n,
        "lexicon_words": matched,
        "coverage": round(coverage, 4),
        "scores": {a: round(hits[a] / n, 4) if n else 0.0 for a in EMOTIONS + POLARITIES},
        "hits": {a: hits[a] for a in EMOTIONS + POLARITIES},
        "dominant": dominant,
        "dominant_share": round(emo_hits[dominant] / total_emo, 4) if dominant else 0.0,
        "polarity": round(polarity, 4),
        "sentiment": label,
        "confidence": round(confidence, 4),
        "top_emotions": ranked[:MAX_THEMES],
    }


class EmotionAnalyzer(LocalAnalyzer):
    """NRC lexicon emotions; see the module docstring."""

    name = "emotion"
    analyzer_type = "emotion"
    versions = fixed_versions(AnalyzerName.emotion)
    version = versions[-1]

    def analyze_one(self, track: TrackInput) -> AnalysisResult | ItemOutcome:
        data = emotion_features(track.lyrics or "")
        if data["word_count"] == 0:
            return ItemOutcome.skipped(track.id, "no words in lyrics")
        return AnalysisResult(
            track_id=track.id,
            analyzer_type=self.analyzer_type,
            model_version=self.version,
            sentiment=data["sentiment"],
            confidence=data["confidence"],
            themes=list(data["top_emotions"]),
            complexity_score=None,
            analysis_data=data,
        )
