"""Lyrics out of a genius.com song page, and the small text facts a track row needs.

The page markup Genius serves today puts the lyrics in one or more
`<div data-lyrics-container="true">` blocks (split around ads and sidebars). Inside:
plain text, `<br>` line breaks, annotation links (`<a class="ReferentFragment..."
href="/123/...">` wrapping `<span>`s: the link goes, its text stays), inline `<i>`/
`<b>`, section headers as text ("[Verse 1]", "[Chorus: Artist]") and, in the first
block, a header marked `data-exclude-from-selection="true"` ("12 Contributors ...
Lyrics") that is not lyrics. Older pages used `<div class="lyrics">` with `<p>`
paragraphs; both are read. Whitespace in the HTML source collapses like a browser
does; line breaks come only from `<br>` and block ends, so they are kept exactly.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

from analyzer_runtime.analyzers.text import tokenize

# Elements whose content is never lyrics text.
_SKIP_TAGS = frozenset({"script", "style", "noscript", "button", "svg", "iframe", "template"})
# Block elements: their end is a line break (legacy <p> paragraphs, nested <div>s).
_BLOCK_TAGS = frozenset({"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6"})
_VOID_TAGS = frozenset({"br", "img", "hr", "meta", "link", "input", "wbr", "source"})


class _LyricsParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.containers: list[list[str]] = []  # the text pieces of each container
        self._depth = 0  # open elements since the current container opened (0 = outside)
        self._skip_depth = 0  # > 0 while inside an excluded subtree

    def _is_container(self, tag: str, attrs: dict[str, str | None]) -> bool:
        if attrs.get("data-lyrics-container") == "true":
            return True
        classes = (attrs.get("class") or "").split()
        return tag == "div" and "lyrics" in classes  # the legacy markup

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if self._depth == 0:
            if self._is_container(tag, a):
                self.containers.append([])
                self._depth = 1
            return
        if tag in _VOID_TAGS:
            self.handle_startendtag(tag, attrs)
            return
        self._depth += 1
        if self._skip_depth:
            self._skip_depth += 1
        elif tag in _SKIP_TAGS or a.get("data-exclude-from-selection") == "true":
            self._skip_depth = 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._depth and not self._skip_depth and tag == "br":
            self.containers[-1].append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._depth == 0 or tag in _VOID_TAGS:
            return
        self._depth -= 1
        if self._skip_depth:
            self._skip_depth -= 1
            return
        if self._depth and tag in _BLOCK_TAGS:
            self.containers[-1].append("\n")

    def handle_data(self, data: str) -> None:
        if self._depth and not self._skip_depth:
            # Source whitespace (indentation, newlines in the HTML) is one space, as in
            # a browser; only <br> and block ends make lines.
            self.containers[-1].append(re.sub(r"\s+", " ", data))


def extract_lyrics(html: str) -> str:
    """The lyrics of a song page: lines kept, blank lines between sections kept (at most
    one in a row), annotations reduced to their text. "" when the page has none."""
    parser = _LyricsParser()
    parser.feed(html)
    parser.close()
    lines: list[str] = []
    for pieces in parser.containers:
        # A container boundary is a line break (Genius splits blocks around ads, not
        # only between sections, so it is not a blank line).
        lines.extend(line.strip() for line in "".join(pieces).split("\n"))
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    text = "\n".join(out)
    # Genius marks songs without lyrics with a bracketed note instead of nothing.
    if re.fullmatch(r"\[?\s*(instrumental|lyrics? (for this song )?(have|has) yet to be"
                    r" (released|transcribed)[^\]]*)\s*\]?\.?", text, re.IGNORECASE):  # fmt: skip
        return ""
    return text


def word_count(lyrics: str) -> int:
    """Words of the lyrics, section headers excluded (the corpus's definition: the
    analyzers' tokenizer, which drops "[Verse 1]" markers)."""
    return len(tokenize(lyrics))


# Entries Genius lists among an artist's songs that are not songs.
_NON_SONG_RE = re.compile(
    r"\b(track\s?list(ing)?|album art(work)?|liner notes|booklet|credits|interview|"
    r"set\s?list|discography|press release|annotated|translations?)\b",
    re.IGNORECASE,
)


def is_non_song(title: str) -> bool:
    """True for tracklists, album art, liner notes, interviews and the like."""
    return bool(_NON_SONG_RE.search(title or ""))


# A few hundred most frequent words would be better; these function words tell the
# languages of the corpus apart reliably on a song's worth of text.
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and you to it my me in that is of on i a we your they be for".split()),
    "es": frozenset("el la que de y en los las un una mi tu por con para es yo no se".split()),
    "fr": frozenset("le la les de et je tu un une des est pas que qui dans pour sur ce".split()),
    "de": frozenset("der die das und ich du nicht ist ein eine mit auf den zu es wir".split()),
    "pt": frozenset("o a os as de e que um uma eu não com para meu minha você é do da".split()),
    "it": frozenset("il la che di e un una non per sono io tu mi ti con è del della".split()),
}


def guess_language(lyrics: str, min_hits: int = 5) -> str | None:
    """ISO 639-1 code of the language whose function words are most frequent, or None
    when the text is too short to tell."""
    words = Counter(tokenize(lyrics))
    scores = {lang: sum(words[w] for w in stop) for lang, stop in _STOPWORDS.items()}
    lang, best = max(scores.items(), key=lambda kv: kv[1])
    return lang if best >= min_hits else None
