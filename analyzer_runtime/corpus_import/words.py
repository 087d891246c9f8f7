"""`word_count` for imported lyrics: `len(text.tokenize(lyrics))`, computed fast.

The corpus's `word_count` means what the analyzers mean by a word (see
`analyzer_runtime.analyzers.text`): a run of letters with inner apostrophes, after
control characters and section markers ("[Chorus]") are removed. `tokenize` builds
the words with Unicode regular expressions (~500 µs for a 2.4 KB song), which would
make it the slowest step of an import. A count needs no words: for ASCII text (after
the typographic apostrophes become "'") it is computed with byte translations; any
other text goes through `tokenize` itself. A property test checks both agree.
"""

from __future__ import annotations

import re
import string

from analyzer_runtime.analyzers.text import tokenize

# Typographic apostrophes, as text.clean turns them into "'".
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
# ASCII control characters text.clean drops (tab and newline stay; CR becomes LF).
_CONTROL = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_SECTION = re.compile(rb"\[[^\[\]\n]{0,120}\]")
# Letters -> "a", apostrophes (and the backtick, which clean makes one) -> "'",
# everything else -> " ".
_CLASSES = bytes(
    ord("a") if chr(b) in string.ascii_letters else ord("'") if chr(b) in "'`" else ord(" ")
    for b in range(256)
)


def count_words(lyrics: str) -> int:
    """`len(tokenize(lyrics))`, without building the words when the text is ASCII."""
    text = lyrics.translate(_APOSTROPHES) if not lyrics.isascii() else lyrics
    if not text.isascii():
        return len(tokenize(lyrics))
    raw = text.encode("ascii").replace(b"\r", b"\n").translate(None, _CONTROL)
    marks = (_SECTION.sub(b" ", raw) if b"[" in raw else raw).translate(_CLASSES)
    while b"a'a" in marks:  # an apostrophe between letters joins them: ain't, y'all'd
        marks = marks.replace(b"a'a", b"aaa")
    # Only "a" and " " are left: every word starts with " a" (the text starts after a " ").
    return (b" " + marks.replace(b"'", b" ")).count(b" a")
