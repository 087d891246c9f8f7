"""Song pages shaped like genius.com's, in three markups (see catalog.py).

Genius publishes no document of its page markup (its API has no lyrics: "we can't
return lyrics through the API", https://docs.genius.com/); these follow the public
song pages (genius.com/<Artist>-<title>-lyrics) as served since 2020, and the markup
the LyricsGenius client parses (https://github.com/johnwmillr/LyricsGenius,
`data-lyrics-container`, the older `div.lyrics`).

`current`: today's markup - the lyrics split over two `data-lyrics-container` divs
around an ad, a contributors header marked `data-exclude-from-selection` inside the
first one, annotation links (`ReferentFragment` anchors around spans, sometimes over
two lines), `<br/>` line breaks and a blank line before each section header.
`legacy`: the old `<div class="lyrics"><p>` markup. `unusual`: pretty-printed source
(newlines and indentation that must collapse), `<br>` without a slash, `<i>`/`<b>`
inside annotations, and a "You might also like" block inside the container.
"""

from __future__ import annotations

from html import escape

from rap_devtools.fake_genius.catalog import FakeSong

_HEAD = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title} Lyrics</title>'
    '<script>window.__PRELOADED_STATE__ = {{"songPage": {{"lyricsData": "<br>"}}}};</script>'
    '</head><body><div class="Header"><h1>{title}</h1><a href="/artists/x">{artist}</a></div>'
)
_FOOT = '<div class="LyricsFooter__Container">Lyrics should be checked</div></body></html>'


def render(song: FakeSong) -> str:
    head = _HEAD.format(title=escape(song.title), artist=escape(song.artist_name))
    if song.kind != "song" or not song.lyrics:
        # Genius's page for a song without lyrics: an empty container and a note outside it.
        return (
            head + '<div data-lyrics-container="true" class="Lyrics__Container-sc-1"></div>'
            '<div class="LyricsPlaceholder">This song is an instrumental</div>' + _FOOT
        )
    lines = song.lyrics.split("\n")
    body = {"legacy": _legacy, "unusual": _unusual}.get(song.markup, _current)(lines, song.id)
    return head + body + _FOOT


def _line(text: str, i: int, song_id: int) -> str:
    """A line, every 5th one inside an annotation link."""
    t = escape(text)
    if i % 5 == 3 and not text.startswith("["):
        return (
            f'<a href="/{song_id}{i}/annotation" class="ReferentFragment-desktop__ClickTarget-sc-1">'
            f'<span class="ReferentFragment-desktop__Highlight-sc-1">{t}</span></a>'
        )
    return t


def _current(lines: list[str], song_id: int) -> str:
    parts: list[str] = []
    for i, text in enumerate(lines):
        if text.startswith("[") and i:
            parts.append("")  # joined by <br/>: the blank line Genius puts before a section
        parts.append(_line(text, i, song_id))
    # One annotation spanning two lines, as Genius does for couplets.
    k = next(
        (j for j in range(1, len(parts) - 1)
         if all(p and not p.startswith(("[", "<")) for p in parts[j : j + 2])),
        None,
    )  # fmt: skip
    if k is not None:
        parts[k : k + 2] = [
            f'<a href="/{song_id}/pair" class="ReferentFragment-desktop__ClickTarget-sc-1">'
            f"<span>{parts[k]}<br/>{parts[k + 1]}</span></a>"
        ]
    half = len(parts) // 2
    header = (
        '<div data-exclude-from-selection="true" class="LyricsHeader__Container-sc-1">'
        "<h2>12 Contributors</h2><span>Translations</span></div>"
    )
    return (
        '<div data-lyrics-container="true" class="Lyrics__Container-sc-1">'
        f"{header}{'<br/>'.join(parts[:half])}<br/></div>"
        '<div class="RightSidebar__Container-sc-1"><div class="ad">Advertisement</div></div>'
        f'<div data-lyrics-container="true" class="Lyrics__Container-sc-1">'
        f"{'<br/>'.join(parts[half:])}</div>"
    )


def _legacy(lines: list[str], song_id: int) -> str:
    paras: list[list[str]] = []
    for text in lines:
        if text.startswith("[") or not paras:
            paras.append([])
        paras[-1].append(_line(text, len(paras[-1]), song_id))
    inner = "".join(f"<p>{'<br>'.join(p)}</p>" for p in paras)
    return f'<div class="lyrics"><!--sse-->{inner}<!--/sse--></div>'


def _unusual(lines: list[str], song_id: int) -> str:
    out = ['\n<div\n   data-lyrics-container="true"   class="Lyrics__Container-sc-2">\n']
    for i, text in enumerate(lines):
        t = escape(text)
        if i % 4 == 1 and " " in text:
            a, b = t.split(" ", 1)
            t = f'<a href="/{i}"\n  class="ReferentFragment"><span><i>{a}</i>\n   <b>{b}</b></span></a>'
        out.append(f"    {t}\n    <br>\n")
        if i == len(lines) // 2:
            out.append(
                '  <div data-exclude-from-selection="true" class="InreadContainer">\n'
                "     You might also like <a href='/x'>Other Song</a>\n  </div>\n"
            )
    out.append("</div>\n")
    return "".join(out)
