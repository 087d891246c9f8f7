"""Rule-based lyric features: the `algorithmic` analyzer.

All features are computed from one parse of the lyrics (`text.parse`): bars are
non-empty lines without section markers, words are lower-cased letter runs
(see `text`). Every feature is linear (or n log n) in the text length, so a
1 MB text takes about a second, and the result is fully deterministic.

Features (all in `analysis_data`):

- sentiment: mean VADER compound over bars (`sentiment` module says why per
  bar); label positive >= 0.05, negative <= -0.05, else neutral.
- rhyme: each bar's *rhyme key* is `pronouncing.rhyming_part` of the first CMU
  pronunciation of its last word (from the last stressed vowel to the end;
  "goin'" is looked up as "going"; words not in CMU have no key).
  ``density`` = share of ALL bars whose key equals the key of another bar at
  distance 1 or 2 (i.e. within +-2 bars) ending on a *different* word
  (repeating the same word is not a rhyme). ``scheme`` = one letter per bar
  (first 256 bars): A, B, C... by first appearance of each key, "-" for a bar
  whose last word has no key; identical keys share a letter, so couplets read
  "AABB" and alternating rhymes "ABAB".
- lexical: type-token ratio (distinct words / words) and MATTR, the mean TTR
  over every window of 50 consecutive words (equal to TTR below 50 words),
  which does not fall with length the way TTR does.
- syllables: CMU syllables (vowel phones) of each word's first pronunciation,
  a vowel-group count for words not in CMU; reported per bar and per word,
  plus the share of words with 3+ syllables.
- repetition: lines compared as their word lists; ``repeated_line_ratio`` =
  (bars - distinct bars) / bars; ``repeated_trigram_ratio`` = 1 - distinct
  word trigrams / trigrams; ``hook`` = the most repeated line (count >= 2,
  ties go to the earliest), else null.
- profanity: count and ratio of words in `lexicons.PROFANITY`.
- themes: per theme in `lexicons.THEMES`, keyword hits per 100 words. A theme
  is listed in `AnalysisResult.themes` when it has >= 2 hits and >= 1.0 per
  100 words; at most 3, highest score first.
- complexity (0-1) = 0.30 * clamp((MATTR - 0.4) / 0.5)
                   + 0.25 * rhyme density
                   + 0.20 * clamp((syllables per bar - 4) / 12)
                   + 0.15 * (1 - repeated_line_ratio)
                   + 0.10 * clamp(multisyllabic share / 0.2)
  i.e. varied vocabulary, dense rhymes, long bars, little repetition and long
  words all push it up; each term is in 0-1, so the sum is too.

`confidence` describes the sentiment label: 0.6 * strength + 0.4 * coverage,
times a length factor min(1, words / 20). strength is min(1, |compound| / 0.5)
for a polar label and 1 - |compound| / 0.05 for neutral; coverage is
min(1, lexicon-word share / 0.1).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from analyzer_runtime.analyzers.base import (
    AnalysisResult,
    ItemOutcome,
    LocalAnalyzer,
    TrackInput,
)
from analyzer_runtime.analyzers.lexicons import PROFANITY, THEMES
from analyzer_runtime.analyzers.phonetics import word_info
from analyzer_runtime.analyzers.sentiment import THRESHOLD, score_lines
from analyzer_runtime.analyzers.text import Bar, Lyrics, normalize_word, parse
from analyzer_runtime.contract.types import AnalyzerName, fixed_versions

MATTR_WINDOW = 50
SCHEME_MAX_BARS = 256
RHYME_DISTANCE = 2
THEME_MIN_HITS = 2
THEME_MIN_PER_100 = 1.0
MAX_THEMES = 3
_SCHEME_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def mattr(words: list[str], window: int = MATTR_WINDOW) -> float:
    """Moving-average type-token ratio, O(n) with a sliding counter."""
    n = len(words)
    if n == 0:
        return 0.0
    if n <= window:
        return len(set(words)) / n
    counts: Counter[str] = Counter(words[:window])
    types = len(counts)
    total = types
    for i in range(window, n):
        out, new = words[i - window], words[i]
        counts[out] -= 1
        if counts[out] == 0:
            types -= 1
        if counts[new] == 0:
            types += 1
        counts[new] += 1
        total += types
    return total / (n - window + 1) / window


def rhyme_features(bars: list[Bar]) -> dict[str, Any]:
    """Rhyme density and end-rhyme scheme as defined in the module docstring."""
    ends = [b.words[-1] for b in bars]
    keys = [word_info(w)[1] for w in ends]
    n = len(bars)
    rhymed = 0
    for i in range(n):
        key = keys[i]
        if key is None:
            continue
        for j in range(max(0, i - RHYME_DISTANCE), min(n, i + RHYME_DISTANCE + 1)):
            if j != i and keys[j] == key and ends[j] != ends[i]:
                rhymed += 1
                break
    letters: dict[str, str] = {}
    scheme: list[str] = []
    for key in keys[:SCHEME_MAX_BARS]:
        if key is None:
            scheme.append("-")
            continue
        if key not in letters:
            k = len(letters)
            letters[key] = _SCHEME_LETTERS[k] if k < len(_SCHEME_LETTERS) else "*"
        scheme.append(letters[key])
    return {
        "density": round(rhymed / n, 4) if n else 0.0,
        "rhymed_bars": rhymed,
        "scheme": "".join(scheme),
        "end_words_in_cmu": sum(k is not None for k in keys),
    }


def repetition_features(lyrics: Lyrics) -> dict[str, Any]:
    lines = Counter(" ".join(b.words) for b in lyrics.bars)
    n_bars = len(lyrics.bars)
    hook, hook_count = (None, 0)
    if lines:
        line, count = lines.most_common(1)[0]  # stable: ties keep first occurrence
        if count >= 2:
            hook, hook_count = line, count
    w = lyrics.words
    trigrams = len(w) - 2
    distinct = len(set(zip(w, w[1:], w[2:], strict=False))) if trigrams > 0 else 0
    return {
        "repeated_line_ratio": round((n_bars - len(lines)) / n_bars, 4) if n_bars else 0.0,
        "repeated_trigram_ratio": round(1 - distinct / trigrams, 4) if trigrams > 0 else 0.0,
        "distinct_lines": len(lines),
        "hook": hook,
        "hook_count": hook_count,
    }


def theme_scores(norm_words: list[str]) -> tuple[dict[str, float], dict[str, int], list[str]]:
    counts = Counter(norm_words)
    n = len(norm_words)
    hits = {name: sum(counts[w] for w in vocab if w in counts) for name, vocab in THEMES.items()}
    scores = {name: round(100 * h / n, 3) if n else 0.0 for name, h in hits.items()}
    order = list(THEMES)
    chosen = [
        name
        for name in THEMES
        if hits[name] >= THEME_MIN_HITS and scores[name] >= THEME_MIN_PER_100
    ]
    chosen.sort(key=lambda t: (-scores[t], order.index(t)))
    return scores, hits, chosen[:MAX_THEMES]


def sentiment_confidence(compound: float, label: str, coverage: float, n_words: int) -> float:
    if label == "neutral":
        strength = 1 - abs(compound) / THRESHOLD
    else:
        strength = min(1.0, abs(compound) / 0.5)
    base = 0.6 * _clamp(strength) + 0.4 * min(1.0, coverage / 0.1)
    return round(_clamp(base * min(1.0, n_words / 20)), 4)


def complexity(mattr_value: float, density: float, spb: float, rep: float, multi: float) -> float:
    return round(
        0.30 * _clamp((mattr_value - 0.4) / 0.5)
        + 0.25 * density
        + 0.20 * _clamp((spb - 4) / 12)
        + 0.15 * (1 - rep)
        + 0.10 * _clamp(multi / 0.2),
        4,
    )


def features(text: str) -> dict[str, Any]:
    """Every feature of one lyrics text; `analysis_data` of the analyzer."""
    lyrics = parse(text)
    words = lyrics.words
    n = len(words)
    norm = [normalize_word(w) for w in words]
    syl = [word_info(w)[0] for w in words]
    n_bars = len(lyrics.bars)
    senti = score_lines([b.text for b in lyrics.bars])
    rhyme = rhyme_features(lyrics.bars)
    rep = repetition_features(lyrics)
    scores, hits, chosen = theme_scores(norm)
    profane = sum(1 for w in norm if w in PROFANITY)
    ttr = len(set(words)) / n if n else 0.0
    mattr_value = mattr(words)
    total_syl = sum(syl)
    spb = total_syl / n_bars if n_bars else 0.0
    multi = sum(1 for s in syl if s >= 3) / n if n else 0.0
    return {
        "word_count": n,
        "unique_words": len(set(words)),
        "bar_count": n_bars,
        "sections": lyrics.sections[:64],
        "emoji_count": lyrics.emoji,
        "sentiment": {
            "compound": senti.compound,
            "label": senti.label,
            "coverage": senti.coverage,
            "units": senti.units,
        },
        "rhyme": rhyme,
        "lexical": {"ttr": round(ttr, 4), "mattr": round(mattr_value, 4), "window": MATTR_WINDOW},
        "syllables": {
            "total": total_syl,
            "per_bar": round(spb, 3),
            "per_word": round(total_syl / n, 3) if n else 0.0,
            "multisyllabic_share": round(multi, 4),
        },
        "repetition": rep,
        "profanity": {"count": profane, "ratio": round(profane / n, 4) if n else 0.0},
        "themes": scores,
        "theme_hits": hits,
        "top_themes": chosen,
        "complexity": complexity(
            mattr_value, rhyme["density"], spb, rep["repeated_line_ratio"], multi
        ),
    }


class AlgorithmicAnalyzer(LocalAnalyzer):
    """Deterministic rule-based features; see the module docstring."""

    name = "algorithmic"
    analyzer_type = "algorithmic"
    versions = fixed_versions(AnalyzerName.algorithmic)
    version = versions[-1]

    def analyze_one(self, track: TrackInput) -> AnalysisResult | ItemOutcome:
        data = features(track.lyrics or "")
        if data["word_count"] == 0:
            # Only digits, punctuation or emoji: nothing to measure.
            return ItemOutcome.skipped(track.id, "no words in lyrics")
        senti = data["sentiment"]
        return AnalysisResult(
            track_id=track.id,
            analyzer_type=self.analyzer_type,
            model_version=self.version,
            sentiment=senti["label"],
            confidence=sentiment_confidence(
                senti["compound"], senti["label"], senti["coverage"], data["word_count"]
            ),
            themes=list(data["top_themes"]),
            complexity_score=data["complexity"],
            analysis_data=data,
        )
