"""Lyrics extraction from song-page markup variants, and the scraper's text helpers."""

from __future__ import annotations

import pytest
from rap_devtools.fake_genius.catalog import catalog
from rap_devtools.fake_genius.pages import render

from analyzer_runtime.contract.scrape_models import normalize_name
from analyzer_runtime.corpus.synthetic import track
from analyzer_runtime.scrape.lyrics import extract_lyrics, guess_language, is_non_song, word_count
from analyzer_runtime.scrape.spotify import normalize_title

CURRENT = (
    "<html><head><script>var x = '<br>';</script></head><body>"
    '<div class="SongHeader">Song Title</div>'
    '<div data-lyrics-container="true" class="Lyrics__Container-sc-1">'
    '<div data-exclude-from-selection="true" class="LyricsHeader__Container">'
    "<h2>12 Contributors</h2><span>Song Lyrics</span></div>"
    "[Intro]<br/>Yeah, yeah<br/><br/>[Verse 1: MC Test]<br/>"
    '<a href="/123/Annotated" class="ReferentFragment-desktop__ClickTarget">'
    '<span class="ReferentFragment-desktop__Highlight">First <i>annotated</i> bar<br/>'
    "second annotated bar</span></a><br/>Plain &amp; simple, it&#x27;s real</div>"
    '<div class="RightSidebar"><div>Advertisement</div></div>'
    '<div data-lyrics-container="true" class="Lyrics__Container-sc-1">'
    "<br/>[Chorus]<br>Hook line<br/>Hook line</div>"
    '<div class="LyricsFooter">You might also like</div></body></html>'
)


def test_current_markup_keeps_lines_and_sections_and_drops_annotation_links() -> None:
    assert extract_lyrics(CURRENT) == (
        "[Intro]\nYeah, yeah\n\n[Verse 1: MC Test]\nFirst annotated bar\n"
        "second annotated bar\nPlain & simple, it's real\n\n[Chorus]\nHook line\nHook line"
    )


def test_legacy_markup() -> None:
    html = (
        '<div class="lyrics"><!--sse--><p>[Verse 1]<br>line one<br>'
        '<a href="/1">line two</a></p><p>[Hook]<br>hook</p><!--/sse--></div>'
    )
    assert extract_lyrics(html) == "[Verse 1]\nline one\nline two\n[Hook]\nhook"


def test_unusual_markup_collapses_source_whitespace_and_skips_inserts() -> None:
    html = """
    <div
       data-lyrics-container="true"   class="Lyrics__Container">
        [Verse 1]
        <br>
        <a href="/9"
          class="ReferentFragment"><span><i>nested</i>
           <b>tags</b>  here</span></a>
        <br>
      <div data-exclude-from-selection="true" class="InreadContainer">
         You might also like <a href="/x">Other Song</a><br/>
      </div>
        last&nbsp;line
    </div>"""
    assert extract_lyrics(html) == "[Verse 1]\nnested tags here\nlast line"


@pytest.mark.parametrize(
    "html",
    [
        '<div data-lyrics-container="true"></div><p>This song is an instrumental</p>',
        '<div data-lyrics-container="true">[Instrumental]</div>',
        '<div data-lyrics-container="true">Lyrics for this song have yet to be released.'
        " Please check back once the song has been released.</div>",
        "<html><body>no container at all</body></html>",
    ],
    ids=["empty", "instrumental-note", "unreleased", "no-container"],
)
def test_pages_without_lyrics_give_nothing(html: str) -> None:
    assert extract_lyrics(html) == ""


@pytest.mark.parametrize("markup", ["current", "legacy", "unusual"])
def test_test_server_pages_round_trip_to_the_synthetic_lyrics(markup: str) -> None:
    cat = catalog()
    songs = [s for s in cat.songs.values() if s.markup == markup and s.kind == "song"][:25]
    assert songs
    for s in songs:
        got = extract_lyrics(render(s))
        # Exactly the synthetic lines, plus blank lines between sections.
        assert [line for line in got.split("\n") if line] == s.lyrics.split("\n")
        if s.id >= 5_000_000 and s.id < 9_000_000:
            assert word_count(got) == track(s.id - 5_000_000, 7).word_count


def test_non_songs_and_language() -> None:
    for title in ("Good Kid Tracklist + Album Art", "Liner Notes", "Interview with MC X",
                  "Album Credits", "Setlist 2019"):  # fmt: skip
        assert is_non_song(title), title
    for title in ("Money Trees", "Skit", "Interlude", "Track 7"):
        assert not is_non_song(title), title
    assert guess_language("you and me in the city, it is my time to shine on the stage") == "en"
    assert guess_language("yo no se que es la vida, mi amor, por la calle con los que") == "es"
    assert guess_language("la la la") is None


def test_names_and_titles_compare_normalized() -> None:
    assert normalize_name("  Kendrick\u00a0 LAMAR ") == normalize_name("kendrick lamar")
    assert normalize_name("Lil\u2019 Kim") == normalize_name("Lil' Kim")
    assert normalize_title("Money Trees (feat. Jay Rock) - Remastered 2011") == "money trees"
    assert normalize_title("HUMBLE.") == "humble"
    assert normalize_title("Don't Stop ft. Someone") == "dont stop"
    assert normalize_title("Track [Remix]") != normalize_title("Other Track")
