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
# On the classified bytes below: "[", then up to 120 non-bracket, non-newline bytes, "]".
_SECTION = re.compile(rb"\[[^\[\]\n]{0,120}\]")


def _table(keep: str) -> bytes:
    """Letters -> "a", apostrophes (the backtick too, as clean has it) -> "'", CR -> LF,
    the characters in `keep` as they are, everything else -> " "."""
    out = bytearray(b" " * 256)
    for b in range(256):
        c = chr(b)
        if c in string.ascii_letters:
            out[b] = ord("a")
        elif c in "'`":
            out[b] = ord("'")
        elif c in keep:
            out[b] = b
    if "\n" in keep:
        out[ord("\r")] = ord("\n")
    return bytes(out)


_CLASSES = _table("[]\n")  # what section markers need still there
_BLANKS = bytes.maketrans(b"'[]\n", b"    ")


def count_words(lyrics: str) -> int:
    """`len(tokenize(lyrics))`, without building the words when the text is ASCII."""
    try:
        raw = lyrics.encode("ascii")
    except UnicodeEncodeError:
        try:
            raw = lyrics.translate(_APOSTROPHES).encode("ascii")
        except UnicodeEncodeError:
            return len(tokenize(lyrics))
    marks = raw.translate(_CLASSES, _CONTROL)  # one pass: classify, drop controls
    if b"[" in marks:
        marks = _SECTION.sub(b" ", marks)
    if b"''" not in marks:
        # A single apostrophe between letters joins them (ain't, y'all'd); one beside
        # anything else separates nothing that a space would not: drop them all.
        marks = marks.replace(b"'", b"")
    else:
        while b"a'a" in marks:
            marks = marks.replace(b"a'a", b"aaa")
    marks = marks.translate(_BLANKS)
    # Only "a" and " " are left: a word starts at every " a", and at a leading "a".
    return marks.count(b" a") + marks.startswith(b"a")
