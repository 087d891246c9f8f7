"""The deterministic synthetic corpus."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import astuple
from datetime import date

import pronouncing
import pytest

from analyzer_runtime.analyzers.algorithmic import features
from analyzer_runtime.analyzers.text import tokenize
from analyzer_runtime.corpus import SyntheticTrack, generate_tracks

SECTION_RE = re.compile(r"^\[(.+)\]$")


@pytest.fixture(scope="module")
def sample() -> list[SyntheticTrack]:
    return list(generate_tracks(2000, seed=42))


def _sections(lyrics: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in lyrics.split("\n"):
        m = SECTION_RE.match(line)
        if m:
            out.append((m.group(1), []))
        else:
            out[-1][1].append(line)
    return out


def _cmu_rhyme(word: str) -> str | None:
    # independent of the analyzers' cache: straight from `pronouncing`
    phones = pronouncing.phones_for_word(word)
    return pronouncing.rhyming_part(phones[0]) if phones else None


def test_same_seed_same_tracks() -> None:
    assert list(generate_tracks(30, seed=7)) == list(generate_tracks(30, seed=7))


def test_different_seed_different_tracks() -> None:
    a, b = list(generate_tracks(30, seed=7)), list(generate_tracks(30, seed=8))
    assert [t.genius_id for t in a] == [t.genius_id for t in b]  # ids are positions
    assert sum(x.lyrics != y.lyrics for x, y in zip(a, b, strict=True)) >= 29


def test_start_slices_the_same_sequence() -> None:
    whole = list(generate_tracks(15, seed=3))
    assert list(generate_tracks(5, seed=3, start=10)) == whole[10:]


def test_genius_ids_unique_and_positional(sample: list[SyntheticTrack]) -> None:
    ids = [t.genius_id for t in sample]
    assert ids == [1_000_000 + i for i in range(len(sample))]
    assert len(set(ids)) == len(ids)


def test_negative_arguments_rejected() -> None:
    with pytest.raises(ValueError):
        list(generate_tracks(-1))


def test_metadata_fields(sample: list[SyntheticTrack]) -> None:
    for t in sample[:200]:
        assert t.title and t.artist and t.album
        assert isinstance(t.release_date, date) and 1988 <= t.release_date.year <= 2030
        assert str(t.genius_id) in t.url and t.url.startswith("https://")
        assert (t.genre, t.language) == ("rap", "en")
        assert all(isinstance(v, str | int | bool | date) for v in astuple(t))


def test_word_count_matches_tokenizer(sample: list[SyntheticTrack]) -> None:
    for t in sample[:500]:
        assert t.word_count == len(tokenize(t.lyrics))


def test_word_count_spread(sample: list[SyntheticTrack]) -> None:
    wc = [t.word_count for t in sample]
    assert min(wc) >= 150 and max(wc) <= 1200
    assert statistics.mean(wc) > statistics.median(wc)  # right-skewed
    assert sum(w < 250 for w in wc) > 50
    assert sum(w > 800 for w in wc) > 20


def test_structure_verses_and_repeated_chorus(sample: list[SyntheticTrack]) -> None:
    for t in sample[:300]:
        sections = _sections(t.lyrics)
        verses = [bars for name, bars in sections if name.startswith("Verse")]
        choruses = [bars for name, bars in sections if name == "Chorus"]
        assert verses and all(8 <= len(v) <= 24 for v in verses)
        assert len(choruses) >= 2 and all(c == choruses[0] for c in choruses)
        assert 4 <= len(choruses[0]) <= 8


@pytest.mark.slow  # the CMU dictionary
def test_end_rhymes_really_rhyme_per_cmu(sample: list[SyntheticTrack]) -> None:
    pairs = 0
    for t in sample[:300]:
        for name, bars in _sections(t.lyrics):
            if name == "Intro":
                continue  # ad-libs, outside the rhyme scheme
            assert len(bars) % 2 == 0
            for a, b in zip(bars[::2], bars[1::2], strict=True):
                wa, wb = a.split()[-1], b.split()[-1]
                assert wa != wb
                assert _cmu_rhyme(wa) is not None and _cmu_rhyme(wa) == _cmu_rhyme(wb), (a, b)
                pairs += 1
    assert pairs > 1000


def test_hook_is_detected_as_the_chorus(sample: list[SyntheticTrack]) -> None:
    for t in sample[:50]:
        chorus = next(bars for name, bars in _sections(t.lyrics) if name == "Chorus")
        rep = features(t.lyrics)["repetition"]
        assert rep["hook_count"] >= 2
        assert rep["hook"] in {" ".join(tokenize(line)) for line in chorus}


@pytest.mark.slow  # runs the analyzers
def test_vocabulary_exercises_the_analyzers(sample: list[SyntheticTrack]) -> None:
    themes: Counter[str] = Counter()
    explicit_with_profanity = 0
    for t in sample[:400]:
        f = features(t.lyrics)
        themes.update(f["top_themes"])
        if t.explicit:
            explicit_with_profanity += f["profanity"]["count"] > 0
        else:
            assert f["profanity"]["count"] == 0, t.lyrics
        assert f["rhyme"]["density"] > 0.5
    assert {"money", "violence", "love", "struggle", "party", "fame"} <= set(themes)
    assert explicit_with_profanity > 100
    assert any("'" in w for t in sample[:20] for w in tokenize(t.lyrics))  # slang


@pytest.mark.slow  # the whole synthetic corpus
def test_artists_about_350_with_skewed_counts() -> None:
    counts = Counter(t.artist for t in generate_tracks(6000, seed=42))
    assert 300 <= len(counts) <= 350
    ranked = [c for _, c in counts.most_common()]
    assert ranked[0] > 5 * statistics.median(ranked)


def test_artist_has_consistent_albums(sample: list[SyntheticTrack]) -> None:
    albums: dict[str, set[str]] = {}
    for t in sample:
        albums.setdefault(t.artist, set()).add(t.album)
    assert all(1 <= len(a) <= 6 for a in albums.values())
