"""What the fake Genius knows: artists and songs built from the synthetic corpus.

The API shapes follow the Genius API documentation (https://docs.genius.com/):
`GET /search` hits with `result.primary_artist`, `GET /artists/:id/songs` paginated
with `next_page` (null on the last page), `GET /songs/:id` with the song's `url`.

The synthetic tracks 0..n-1 (analyzer_runtime.corpus.synthetic, seed `seed`) are
grouped by artist; artists are ranked by song count (ties by name), and each
artist's listing is ordered by a deterministic popularity. Song `i` has Genius id
`SONG_ID_BASE + i` (apart from the seeded corpus's 1,000,000 + i, so a database
seeded for other tests does not already hold them) and exactly the synthetic lyrics.

Deterministic oddities, by artist rank r (0-based), so tests know what to expect:
- r % 5 == 1: a non-song entry ("<album> Tracklist + Album Art") at listing position 2;
- r % 7 == 2: a song whose page has an empty lyrics container, at position 3;
- r % 9 == 4: an entry flagged `instrumental`, at position 4;
- r % 6 == 3: a song of artist r+1 (a feature) at position 1: not r's song;
- r % 4 == 0: its top song's page uses the legacy `<div class="lyrics">` markup;
- r % 4 == 2: its second song's page uses unusual markup (source whitespace, nested
  tags, a "You might also like" block inside the container, `<br>` without slash);
- r == AMBIGUOUS_RANK: the search for its name first returns songs of a decoy artist
  ("<name> & The Band") and of a namesake with the very same name (1 song).
Songs whose Genius id hashes below SPOTIFY_SHARE percent also exist on Spotify.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any, TypedDict

from analyzer_runtime.contract.scrape_models import normalize_name
from analyzer_runtime.corpus.synthetic import SyntheticTrack, generate_tracks

SONG_ID_BASE = 5_000_000
EXTRA_ID_BASE = 9_000_000
ARTIST_ID_BASE = 1_000
DECOY_ARTIST_ID = 900_001
NAMESAKE_ARTIST_ID = 900_002
AMBIGUOUS_RANK = 2
SPOTIFY_SHARE = 60


def _h(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "-" for ch in text)
    return "-".join(p for p in out.split("-") if p) or "x"


@dataclass(frozen=True, slots=True)
class FakeSong:
    id: int
    title: str
    artist_id: int
    artist_name: str
    album: str | None
    release_date: date | None
    lyrics: str  # "" for a page without lyrics
    kind: str = "song"  # song | non_song | empty | instrumental
    markup: str = "current"  # current | legacy | unusual
    explicit: bool = False
    popularity: int = 50

    @property
    def path(self) -> str:
        return f"/{slug(self.artist_name)}-{slug(self.title)}-{self.id}-lyrics"

    @property
    def on_spotify(self) -> bool:
        return self.kind == "song" and _h("spotify", self.id) % 100 < SPOTIFY_SHARE


@dataclass(slots=True)
class FakeArtist:
    id: int
    name: str
    rank: int
    songs: list[FakeSong] = field(default_factory=list)  # the listing, in order


def _song(i: int, t: SyntheticTrack, artist_id: int) -> FakeSong:
    return FakeSong(
        id=SONG_ID_BASE + i,
        title=t.title,
        artist_id=artist_id,
        artist_name=t.artist,
        album=t.album,
        release_date=t.release_date,
        lyrics=t.lyrics,
        explicit=t.explicit,
        popularity=_h("pop", i) % 100,
    )


class Expected(TypedDict):
    """What scraping some artists must produce (Catalog.expected)."""

    songs_found: int
    non_songs: int
    skipped: int
    new: dict[int, FakeSong]  # by Genius id


class Catalog:
    def __init__(self, n_tracks: int = 4000, seed: int = 7) -> None:
        self.n_tracks, self.seed = n_tracks, seed
        groups: dict[str, list[tuple[int, SyntheticTrack]]] = {}
        for i, t in enumerate(generate_tracks(n_tracks, seed=seed)):
            groups.setdefault(t.artist, []).append((i, t))
        ranked = sorted(groups, key=lambda name: (-len(groups[name]), name))
        self.artists: list[FakeArtist] = []
        for rank, name in enumerate(ranked):
            a = FakeArtist(ARTIST_ID_BASE + rank, name, rank)
            songs = [_song(i, t, a.id) for i, t in groups[name]]
            a.songs = sorted(songs, key=lambda s: (-s.popularity, s.id))
            self.artists.append(a)
        for a in self.artists:
            self._add_oddities(a)
        amb = self.artists[AMBIGUOUS_RANK]
        self.decoy = FakeArtist(DECOY_ARTIST_ID, f"{amb.name} & The Band", -1)
        self.decoy.songs = [self._extra(self.decoy, k, f"Band Cut {k + 1}") for k in range(3)]
        self.namesake = FakeArtist(NAMESAKE_ARTIST_ID, amb.name, -2)
        self.namesake.songs = [self._extra(self.namesake, 0, "Different Person")]
        self.by_id = {a.id: a for a in [*self.artists, self.decoy, self.namesake]}
        self.songs = {s.id: s for a in self.by_id.values() for s in a.songs}

    def _extra(self, a: FakeArtist, k: int, title: str, kind: str = "song") -> FakeSong:
        sid = EXTRA_ID_BASE + abs(a.rank) * 100 + (50 if a.rank < 0 else 0) + k
        lyrics = "" if kind != "song" else f"[Verse 1]\n{title} line one\n{title} line two"
        return FakeSong(sid, title, a.id, a.name, None, None, lyrics, kind=kind, popularity=99)

    def _add_oddities(self, a: FakeArtist) -> None:
        r, songs = a.rank, a.songs
        if r % 4 == 0 and songs:
            songs[0] = _replace(songs[0], markup="legacy")
        if r % 4 == 2 and len(songs) > 1:
            songs[1] = _replace(songs[1], markup="unusual")
        if r % 6 == 3 and r + 1 < len(self.artists):
            other = self.artists[r + 1]
            if other.songs:
                songs.insert(1, other.songs[-1])  # its least popular song: a feature
        if r % 5 == 1:
            album = songs[0].album if songs else "Debut"
            songs.insert(2, self._extra(a, 1, f"{album} Tracklist + Album Art", "non_song"))
        if r % 7 == 2:
            songs.insert(3, self._extra(a, 2, "Untitled Interlude", "empty"))
        if r % 9 == 4:
            songs.insert(4, self._extra(a, 3, "Beat Tape Outro", "instrumental"))

    # ---- queries -------------------------------------------------------------------

    def names(self, n: int) -> list[str]:
        """The first n artists by rank (all the oddities occur among the first 20)."""
        return [a.name for a in self.artists[:n]]

    def search(self, q: str) -> list[FakeSong]:
        """Song hits for a query: decoys of the ambiguous artist first (so the first hit
        is never the right artist), then songs of artists whose name contains q."""
        want = normalize_name(q)
        hits: list[FakeSong] = []
        if want and want in normalize_name(self.decoy.name):
            hits += self.decoy.songs + self.namesake.songs
        for a in self.artists:
            if want and want in normalize_name(a.name):
                hits += [s for s in a.songs if s.artist_id == a.id]
        return hits

    def expected(self, names: list[str], max_songs: int) -> Expected:
        """What scraping `names` (each at most `max_songs` songs) must produce, with the
        scraper's rules: features skipped, non-songs not counted as songs, instrumental
        and empty pages skipped. `new` maps genius ids to the synthetic songs."""
        by_name = {a.name: a for a in self.artists}
        found = non_songs = skipped = 0
        new: dict[int, FakeSong] = {}
        for name in names:
            a = by_name[name]
            songs = 0
            for s in a.songs:
                if songs >= max_songs:
                    break
                if s.artist_id != a.id:
                    continue
                if s.kind == "non_song":
                    non_songs += 1
                    continue
                songs += 1
                found += 1
                if s.kind in ("empty", "instrumental"):
                    skipped += 1
                else:
                    new[s.id] = s
        return {"songs_found": found, "non_songs": non_songs, "skipped": skipped, "new": new}


def _replace(s: FakeSong, **changes: Any) -> FakeSong:
    from dataclasses import replace

    return replace(s, **changes)


@lru_cache(maxsize=4)
def catalog(n_tracks: int = 4000, seed: int = 7) -> Catalog:
    return Catalog(n_tracks, seed)
