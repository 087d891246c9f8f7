"""Shared text handling for lyrics: cleaning, section markers, bars, words.

Every analyzer (and the synthetic corpus's word counts) goes through these
functions, so "a word" and "a bar" mean the same thing everywhere:

- a *word* is a run of letters in any script, with inner apostrophes
  ("ain't", "y'all"), a leading apostrophe for the common elisions ("'bout",
  "'em") and a trailing one after "-in" ("goin'"); digits, punctuation and
  emoji are not words. Words are lower-cased.
- a *bar* is one line of the lyrics, after section markers are removed, that
  contains at least one word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Typographic apostrophes and quotes become ASCII so "ain’t" and "ain't" are one word.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})

# C0/C1 control characters except tab and newline, plus zero-width and BOM
# characters that scraped lyrics carry; they are dropped outright.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2060\ufeff]")
# Line and paragraph separators and carriage returns end a line like "\n".
_NEWLINES_RE = re.compile(r"\r\n?|[\u2028\u2029\x85]")

# Genius-style section markers: "[Chorus]", "[Verse 1: Artist]", "[Hook x2]".
# Bounded length so a stray "[" cannot swallow a whole 1 MB text.
_SECTION_RE = re.compile(r"\[[^\[\]\n]{0,120}\]")
_SECTION_LINE_RE = re.compile(r"^\s*\[([^\[\]\n]{0,120})\]\s*$")

_WORD_RE = re.compile(
    r"(?:'(?=(?:em|bout|til|cause|round|fore|cept)\b))?"  # 'em, 'bout: elided starts
    r"[^\W\d_]+(?:'[^\W\d_]+)*"  # letters, inner apostrophes: ain't, y'all
    r"(?:(?<=[iI][nN])')?",  # goin', nothin': dropped g
    re.IGNORECASE,
)

# Pictographs, dingbats, flags, skin tones and variation selectors.
_EMOJI_RE = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff"
    "\U00002b00-\U00002bff\ufe0f\u200d]"
)


def clean(text: str) -> str:
    """Normalise newlines and apostrophes and drop control characters."""
    text = _NEWLINES_RE.sub("\n", text)
    text = _CONTROL_RE.sub("", text)
    return text.translate(_APOSTROPHES).replace("\t", " ")


def strip_sections(text: str) -> str:
    """Remove section markers like "[Chorus]" wherever they appear."""
    return _SECTION_RE.sub(" ", text)


def words(text: str) -> list[str]:
    """Lower-cased words of already-cleaned text (see the module docstring)."""
    return [w.lower() for w in _WORD_RE.findall(text)]


def tokenize(text: str) -> list[str]:
    """Words of raw lyrics: cleaned, section markers removed."""
    return words(strip_sections(clean(text)))


def count_emoji(text: str) -> int:
    return len(_EMOJI_RE.findall(text))


def normalize_word(word: str) -> str:
    """Dictionary form for lexicon lookups: "goin'" -> "going", "'em" -> "em"."""
    if word.endswith("in'"):
        return word[:-1] + "g"
    return word.strip("'")


@dataclass(frozen=True, slots=True)
class Bar:
    """One line with at least one word; `text` keeps the original spelling."""

    text: str
    words: list[str]
    section: str | None  # label of the enclosing section marker, lower-cased


@dataclass(frozen=True, slots=True)
class Lyrics:
    """Lyrics parsed once and shared by all features of a track."""

    bars: list[Bar]
    words: list[str]
    emoji: int
    sections: list[str]


def parse(text: str) -> Lyrics:
    """Split raw lyrics into bars and words in one linear pass."""
    text = clean(text)
    bars: list[Bar] = []
    all_words: list[str] = []
    sections: list[str] = []
    section: str | None = None
    for line in text.split("\n"):
        marker = _SECTION_LINE_RE.match(line)
        if marker is not None:
            section = marker.group(1).strip().lower()
            sections.append(section)
            continue
        if "[" in line:
            line = _SECTION_RE.sub(" ", line)
        ws = words(line)
        if ws:
            bars.append(Bar(line.strip(), ws, section))
            all_words.extend(ws)
    return Lyrics(bars, all_words, count_emoji(text), sections)
