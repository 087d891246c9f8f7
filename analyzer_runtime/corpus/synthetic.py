"""Deterministic synthetic rap corpus for seeding, tests and benchmarks.

Track ``i`` depends only on ``(seed, i)``: each track has its own
``random.Random`` seeded from both, so ``generate_tracks(n, seed, start)``
yields the same tracks whatever ``start`` and ``n`` a caller slices with, and
``genius_id = 1_000_000 + i`` makes re-seeding idempotent.

Shape of a track: optional intro, 1-5 ``[Verse N]`` sections of 8-24 bars and
a 4-8 line ``[Chorus]`` (the hook) repeated verbatim 2-3 times. Every section
is written in AABB couplets whose end words share a CMU rhyming part (rhyme
families are computed once at import from `vocabulary.END_WORDS`). The word
count target is log-normal (median 400, right-skewed), clamped to 150-1,100,
and bars are added until the target is met, so totals land in ~150-1,200.
``word_count`` equals ``len(text.tokenize(lyrics))``: it is summed from
per-piece counts computed once with that same tokenizer.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from itertools import accumulate

from analyzer_runtime.analyzers.phonetics import rhyme_key
from analyzer_runtime.analyzers.text import tokenize
from analyzer_runtime.corpus import vocabulary as vocab

ID_BASE = 1_000_000
N_ARTISTS = 350
MIN_WORDS, MAX_TARGET = 150, 1_100
MEDIAN_WORDS, SIGMA = 400, 0.5
VERSE_MIN, VERSE_MAX = 8, 24
EXPLICIT_SHARE = 0.55
THEME_BAR_SHARE = 0.7  # other bars use the general fragments
FIRST_DAY = date(1988, 1, 1)

Piece = tuple[str, int]  # text and its word count


@dataclass(frozen=True, slots=True)
class SyntheticTrack:
    genius_id: int
    title: str
    artist: str
    album: str
    release_date: date
    url: str
    lyrics: str
    word_count: int
    genre: str
    language: str
    explicit: bool


def _pieces(texts: tuple[str, ...]) -> tuple[Piece, ...]:
    return tuple((t, len(tokenize(t))) for t in texts)


@dataclass(frozen=True, slots=True)
class _Material:
    """Everything precomputed once so a bar costs three random picks."""

    clean: dict[str, tuple[Piece, ...]]  # theme -> fragments
    explicit: dict[str, tuple[Piece, ...]]
    general: tuple[Piece, ...]
    lead_ins: tuple[Piece, ...]
    families: tuple[tuple[str, ...], ...]  # end words sharing a rhyme key


@lru_cache(maxsize=1)
def material() -> _Material:
    groups: dict[str, list[str]] = {}
    for word in vocab.END_WORDS:
        key = rhyme_key(word)
        if key is not None and len(tokenize(word)) == 1:
            groups.setdefault(key, []).append(word)
    families = tuple(tuple(ws) for ws in groups.values() if len(set(ws)) >= 2)
    return _Material(
        clean={t: _pieces(vocab.FRAGMENTS[t]) for t in vocab.THEMES},
        explicit={t: _pieces(vocab.FRAGMENTS[t] + vocab.EXPLICIT[t]) for t in vocab.THEMES},
        general=_pieces(vocab.GENERAL),
        lead_ins=_pieces(vocab.LEAD_INS),
        families=families,
    )


@dataclass(frozen=True, slots=True)
class _Artist:
    name: str
    albums: tuple[tuple[str, int], ...]  # album title, release year


@lru_cache(maxsize=4)
def _artists(seed: int) -> tuple[tuple[_Artist, ...], tuple[float, ...]]:
    """N_ARTISTS unique names and cumulative Zipf-like (1/sqrt(rank)) weights."""
    rng = random.Random(f"artists:{seed}")
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < N_ARTISTS:
        prefix = rng.choice(vocab.ARTIST_PREFIXES) + " " if rng.random() < 0.6 else ""
        name = prefix + rng.choice(vocab.ARTIST_CORES) + rng.choice(vocab.ARTIST_SUFFIXES)
        if name not in seen:
            seen.add(name)
            names.append(name)
    artists = []
    for name in names:
        debut = rng.randint(1988, 2018)
        albums = tuple(
            (f"{rng.choice(vocab.ALBUM_WORDS)} {rng.choice(vocab.ALBUM_WORDS)}", debut + 2 * k)
            for k in range(rng.randint(1, 6))
        )
        artists.append(_Artist(name, albums))
    weights = accumulate(1 / math.sqrt(rank + 1) for rank in range(N_ARTISTS))
    return tuple(artists), tuple(weights)


def _slug(text: str) -> str:
    return "-".join(tokenize(text.replace("'", ""))) or "untitled"


class _Writer:
    """Writes one track's bars; holds the per-track random state and choices."""

    def __init__(self, rng: random.Random, explicit: bool) -> None:
        self.rng = rng
        self.m = material()
        themes = rng.sample(vocab.THEMES, 2)
        pools = self.m.explicit if explicit else self.m.clean
        self.main = pools[themes[0]]
        self.second = pools[themes[1]]
        self.themes = themes
        self.explicit = explicit

    def couplet(self) -> tuple[Piece, Piece]:
        rng, m = self.rng, self.m
        family = m.families[int(rng.random() * len(m.families))]
        a, b = rng.sample(family, 2)
        return self.bar(a), self.bar(b)

    def bar(self, end: str) -> Piece:
        rng, m = self.rng, self.m
        r = rng.random()
        pool = self.main if r < 0.5 else self.second if r < THEME_BAR_SHARE else m.general
        frag, fw = pool[int(rng.random() * len(pool))]
        lead, lw = m.lead_ins[int(rng.random() * len(m.lead_ins))]
        return f"{frag} {lead} {end}", fw + lw + 1

    def section(self, min_bars: int, max_bars: int, budget: int) -> tuple[list[str], int]:
        """Couplets until the word budget is spent, within min..max bars."""
        lines: list[str] = []
        words = 0
        while len(lines) < max_bars and (len(lines) < min_bars or words < budget):
            for text, wc in self.couplet():
                lines.append(text)
                words += wc
        return lines, words


def track(index: int, seed: int = 42) -> SyntheticTrack:
    """The synthetic track at position `index` for `seed`."""
    rng = random.Random(seed * 1_000_003 + index)
    artists, cum = _artists(seed)
    artist = artists[min(bisect(cum, rng.random() * cum[-1]), N_ARTISTS - 1)]
    explicit = rng.random() < EXPLICIT_SHARE
    w = _Writer(rng, explicit)
    target = int(min(MAX_TARGET, max(MIN_WORDS, rng.lognormvariate(math.log(MEDIAN_WORDS), SIGMA))))
    hook_bars = rng.choice((4, 6, 8))
    chorus, chorus_words = w.section(hook_bars, hook_bars, 0)
    reps = 2 if target < 500 else 3
    out: list[str] = []
    total = 0
    if rng.random() < 0.3:  # a short ad-lib intro outside the rhyme scheme
        first, second = rng.sample(w.m.general, 2)  # distinct: not a second hook
        out += ["[Intro]", first[0], second[0]]
        total += first[1] + second[1]
    verse_budget = max(0, target - total - reps * chorus_words)
    verses: list[list[str]] = []
    while not verses or verse_budget >= 60:  # below 60 a last 8-bar verse overshoots
        lines, words = w.section(VERSE_MIN, VERSE_MAX, verse_budget)
        verses.append(lines)
        total += words
        verse_budget -= words
    total += reps * chorus_words
    # Chorus after each of the first verses and always at the end; a single
    # verse is framed by choruses: "C V C".
    order: list[str | int]
    if len(verses) == 1:
        order = ["C", 0, *(["C"] * (reps - 1))]
    else:
        between = min(reps - 1, len(verses) - 1)
        order = []
        for i in range(len(verses)):
            order.append(i)
            if i < between:
                order.append("C")
        order += ["C"] * (reps - between)
    for item in order:
        if isinstance(item, str):
            out.append("[Chorus]")
            out += chorus
        else:
            out.append(f"[Verse {item + 1}]")
            out += verses[item]
    hook_end = chorus[0].split()[-3:]
    title = " ".join(hook_end).title()
    album, year = artist.albums[int(rng.random() * len(artist.albums))]
    released = date(year, 1, 1) + timedelta(days=int(rng.random() * 365))
    gid = ID_BASE + index
    return SyntheticTrack(
        genius_id=gid,
        title=title,
        artist=artist.name,
        album=album,
        release_date=released,
        url=f"https://synthetic.invalid/songs/{gid}-{_slug(artist.name)}-{_slug(title)}",
        lyrics="\n".join(out),
        word_count=total,
        genre="rap",
        language="en",
        explicit=explicit,
    )


def generate_tracks(n: int, seed: int = 42, start: int = 0) -> Iterator[SyntheticTrack]:
    """Tracks `start` .. `start + n - 1` for `seed` (see the module docstring)."""
    if n < 0 or start < 0:
        raise ValueError("n and start must be >= 0")
    for index in range(start, start + n):
        yield track(index, seed)
