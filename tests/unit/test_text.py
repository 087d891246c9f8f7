"""Text handling shared by the analyzers and the synthetic corpus."""

from __future__ import annotations

from analyzer_runtime.analyzers import text
from analyzer_runtime.analyzers.phonetics import fallback_syllables, rhyme_key, syllables


def test_words_keep_apostrophes_and_slang() -> None:
    got = text.tokenize("Ain't nothin' 'bout y'all, I'm goin' — tell 'em!")
    assert got == ["ain't", "nothin'", "'bout", "y'all", "i'm", "goin'", "tell", "'em"]


def test_closing_quote_is_not_part_of_a_word() -> None:
    assert text.tokenize("she said 'stop' loud") == ["she", "said", "stop", "loud"]


def test_typographic_apostrophe_is_normalised() -> None:
    assert text.tokenize("ain\u2019t") == ["ain't"]


def test_digits_punctuation_and_emoji_are_not_words() -> None:
    assert text.tokenize("24/7 🔥🔥 -- !!! money 💰") == ["money"]


def test_control_characters_are_dropped_and_cr_ends_a_line() -> None:
    parsed = text.parse("first\x00 line\x07\r\nsecond\u200b line\rthird")
    assert [b.words for b in parsed.bars] == [
        ["first", "line"],
        ["second", "line"],
        ["third"],
    ]


def test_section_markers_are_not_bars_and_label_sections() -> None:
    parsed = text.parse("[Verse 1: Someone]\nline one\n\n[Chorus]\nhook line\n[Hook x2] inline")
    assert [b.text for b in parsed.bars] == ["line one", "hook line", "inline"]
    assert parsed.sections == ["verse 1: someone", "chorus"]
    assert [b.section for b in parsed.bars] == ["verse 1: someone", "chorus", "chorus"]
    assert "chorus" not in parsed.words


def test_emoji_are_counted() -> None:
    assert text.parse("fire 🔥 money 💰💰\nno emoji").emoji == 3


def test_non_latin_scripts_are_words() -> None:
    assert text.tokenize("Я иду домой, 我们 走") == ["я", "иду", "домой", "我们", "走"]


def test_normalize_word_for_lookups() -> None:
    assert text.normalize_word("goin'") == "going"
    assert text.normalize_word("'em") == "em"
    assert text.normalize_word("ain't") == "ain't"


def test_cmu_syllables_and_rhyme_keys() -> None:
    # CMU: "money" M AH1 N IY0, "honey" HH AH1 N IY0 -> "AH1 N IY0", 2 syllables
    assert syllables("money") == 2
    assert rhyme_key("money") == rhyme_key("honey") == "AH1 N IY0"
    assert rhyme_key("goin'") == rhyme_key("going")
    assert rhyme_key("zzqxv") is None


def test_fallback_syllables_for_unknown_words() -> None:
    assert fallback_syllables("skrrt") == 1  # no vowel group still counts one
    assert fallback_syllables("drippin") == 2  # i / i
    assert fallback_syllables("flexstake") == 2  # e / a, silent final e
    assert syllables("blorptastic") == 3  # not in CMU: o / a / i
