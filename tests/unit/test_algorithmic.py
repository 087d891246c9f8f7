"""The algorithmic analyzer on hand-computed fixtures and edge cases."""

from __future__ import annotations

import json
import time

import pytest

from analyzer_runtime.analyzers.algorithmic import AlgorithmicAnalyzer, features, mattr
from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.analyzers.phonetics import rhyme_key
from tests.fixtures.lyrics import CITY_NIGHTS, GRAVE_COLD, GRIND_HOOK, SUNNY_CUP, Fixture

ANALYZER = AlgorithmicAnalyzer()


def _track(lyrics: str | None, track_id: int = 1) -> TrackInput:
    return TrackInput(id=track_id, title="t", artist="a", lyrics=lyrics)


def test_city_nights_matches_hand_computation() -> None:
    exp = CITY_NIGHTS.expected
    f = features(CITY_NIGHTS.lyrics)
    assert f["word_count"] == exp["word_count"]
    assert f["bar_count"] == exp["bar_count"]
    assert f["unique_words"] == exp["unique_words"]
    assert f["lexical"]["ttr"] == pytest.approx(exp["ttr"], abs=1e-4)
    assert f["lexical"]["mattr"] == pytest.approx(exp["mattr"], abs=1e-4)
    assert f["syllables"]["total"] == exp["syllables_total"]
    assert f["syllables"]["per_bar"] == pytest.approx(exp["syllables_per_bar"], abs=1e-3)
    assert f["syllables"]["multisyllabic_share"] == exp["multisyllabic_share"]
    assert f["rhyme"]["density"] == pytest.approx(exp["rhyme_density"], abs=1e-4)
    assert f["rhyme"]["scheme"] == exp["rhyme_scheme"]
    for a, b in exp["rhymed_pairs"]:
        assert rhyme_key(a) == rhyme_key(b) is not None
    assert f["repetition"]["repeated_line_ratio"] == pytest.approx(exp["repeated_line_ratio"])
    assert f["repetition"]["repeated_trigram_ratio"] == pytest.approx(
        exp["repeated_trigram_ratio"], abs=1e-4
    )
    assert f["repetition"]["hook"] == exp["hook"]
    assert f["repetition"]["hook_count"] == exp["hook_count"]
    assert f["profanity"]["count"] == exp["profanity_count"]
    assert f["top_themes"] == exp["themes"]
    assert f["complexity"] == pytest.approx(exp["complexity"], abs=1e-4)
    assert f["sections"] == exp["sections"]


def test_grind_hook_matches_hand_computation() -> None:
    exp = GRIND_HOOK.expected
    f = features(GRIND_HOOK.lyrics)
    assert f["word_count"] == exp["word_count"]
    assert f["bar_count"] == exp["bar_count"]
    assert f["unique_words"] == exp["unique_words"]
    assert f["lexical"]["ttr"] == pytest.approx(exp["ttr"], abs=1e-4)
    assert f["syllables"]["total"] == exp["syllables_total"]
    assert f["syllables"]["per_bar"] == pytest.approx(exp["syllables_per_bar"], abs=1e-3)
    assert f["rhyme"]["density"] == exp["rhyme_density"]
    assert f["rhyme"]["scheme"] == exp["rhyme_scheme"]
    assert f["repetition"]["repeated_line_ratio"] == pytest.approx(exp["repeated_line_ratio"])
    assert f["repetition"]["hook"] == exp["hook"]
    assert f["repetition"]["hook_count"] == exp["hook_count"]
    assert f["profanity"]["count"] == exp["profanity_count"]
    assert f["profanity"]["ratio"] == pytest.approx(exp["profanity_ratio"], abs=1e-4)
    assert f["top_themes"] == exp["themes"]
    assert f["sections"] == exp["sections"]


@pytest.mark.parametrize("fixture", [SUNNY_CUP, GRAVE_COLD], ids=lambda f: f.name)
def test_two_bar_fixtures_rhyme_and_sentiment(fixture: Fixture) -> None:
    exp = fixture.expected
    result = ANALYZER.analyze_sync(_track(fixture.lyrics))
    assert result.status == "done" and result.result is not None
    f = result.result.analysis_data
    assert f["word_count"] == exp["word_count"]
    assert f["rhyme"]["density"] == exp["rhyme_density"]
    assert f["rhyme"]["scheme"] == exp["rhyme_scheme"]
    assert result.result.sentiment == exp["sentiment"]


async def test_result_shape_and_batch() -> None:
    outcomes = await ANALYZER.analyze_batch([_track(CITY_NIGHTS.lyrics, 7), _track("  \n\t ", 8)])
    done, skipped = outcomes
    assert done.status == "done" and done.result is not None
    r = done.result
    assert (r.track_id, r.analyzer_type, r.model_version) == (7, "algorithmic", "1.0.0")
    assert r.sentiment in {"positive", "negative", "neutral"}
    assert r.confidence is not None and 0.0 <= r.confidence <= 1.0
    assert r.complexity_score is not None and 0.0 <= r.complexity_score <= 1.0
    assert r.processing_time_ms >= 0
    json.dumps(r.analysis_data)  # must be storable as jsonb
    assert skipped.status == "skipped" and skipped.reason == "empty lyrics"


def test_deterministic() -> None:
    assert features(GRIND_HOOK.lyrics) == features(GRIND_HOOK.lyrics)


@pytest.mark.parametrize("lyrics", ["", "   ", "\n\n\t", None])
def test_empty_lyrics_are_skipped(lyrics: str | None) -> None:
    out = ANALYZER.analyze_sync(_track(lyrics))
    assert out.status == "skipped" and out.reason


def test_only_emoji_and_digits_is_skipped_not_failed() -> None:
    out = ANALYZER.analyze_sync(_track("🔥🔥 100 💯"))
    assert out.status == "skipped" and out.reason == "no words in lyrics"


def test_one_word() -> None:
    out = ANALYZER.analyze_sync(_track("Money"))
    assert out.status == "done" and out.result is not None
    f = out.result.analysis_data
    assert (f["word_count"], f["bar_count"]) == (1, 1)
    assert f["lexical"]["ttr"] == 1.0
    assert f["rhyme"] == {"density": 0.0, "rhymed_bars": 0, "scheme": "A", "end_words_in_cmu": 1}
    assert f["repetition"]["hook"] is None
    # a single word cannot carry a confident label: length factor 1/20
    assert out.result.confidence is not None and out.result.confidence <= 0.05


def test_emoji_and_control_characters() -> None:
    lyrics = "I love this life 😍\x00\x1b\nmoney\u200b on my mind 💰\r\nfire\x7f 🔥🔥"
    out = ANALYZER.analyze_sync(_track(lyrics))
    assert out.status == "done" and out.result is not None
    f = out.result.analysis_data
    assert f["word_count"] == 9  # i love this life / money on my mind / fire
    assert f["bar_count"] == 3
    assert f["emoji_count"] == 4
    json.dumps(f)


def test_section_markers_do_not_count() -> None:
    plain = "we ride tonight\nwe ride tonight"
    marked = "[Intro]\n[Chorus: Somebody]\nwe ride tonight\n[Chorus]\nwe ride tonight\n[Outro]"
    a, b = features(plain), features(marked)
    assert a["word_count"] == b["word_count"] == 6
    assert a["repetition"]["hook"] == b["repetition"]["hook"] == "we ride tonight"
    assert b["sections"] == ["intro", "chorus: somebody", "chorus", "outro"]
    assert "chorus" not in str(b["repetition"])


def test_non_english_text() -> None:
    lyrics = "Я иду по улице ночью\nГород спит, а я не сплю\n夜の街を歩く"
    out = ANALYZER.analyze_sync(_track(lyrics))
    assert out.status == "done" and out.result is not None
    f = out.result.analysis_data
    assert f["word_count"] == 12
    assert f["rhyme"]["end_words_in_cmu"] == 0
    assert f["rhyme"]["scheme"] == "---"
    assert f["syllables"]["total"] >= f["word_count"]  # fallback: at least one per word
    assert out.result.sentiment == "neutral"


def test_one_megabyte_is_linear_enough() -> None:
    bar = "I been grindin' all day for the money and the fame, no cap\n"
    big = bar * (1_000_000 // len(bar) + 1)
    start = time.perf_counter()
    out = ANALYZER.analyze_sync(_track(big))
    elapsed = time.perf_counter() - start
    assert out.status == "done" and out.result is not None
    assert out.result.analysis_data["word_count"] == 13 * big.count("\n")
    assert len(out.result.analysis_data["rhyme"]["scheme"]) == 256
    assert elapsed < 30  # ~1 s on a quiet core; quadratic would take hours


def test_one_megabyte_single_line() -> None:
    # unformatted text: VADER is run on 40-token chunks, never on the whole line
    big = "money love pain fight " * 50_000
    out = ANALYZER.analyze_sync(_track(big))
    assert out.status == "done" and out.result is not None
    assert out.result.analysis_data["sentiment"]["units"] == 200_000 // 40


def test_mattr_is_length_robust() -> None:
    words = [f"w{i % 40}" for i in range(2000)]  # 40 types, cycling
    assert mattr(words) == pytest.approx(40 / 50)
    assert len(set(words)) / len(words) == pytest.approx(0.02)  # TTR collapses
    assert mattr(["a", "b", "a"]) == pytest.approx(2 / 3)
