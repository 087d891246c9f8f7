"""What an imported row can carry: the fields, their limits and the column names
that public lyrics datasets use for them.

A field is stored in the `tracks` column of the same name, except `views` and
`features`, which `tracks` has no column for: they go into `tracks.spotify_data`
(the table's one JSON column, GIN-indexed) under the key `"import"`, e.g.
`{"import": {"views": 1200, "features": ["Drake"]}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "int", "float", "date", "timestamp", "bool", "features", "json"]

IMPORT_KEY = "import"  # spotify_data key that holds views and features


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    # Column names that map to this field (after normalize_header), in priority order:
    # with both `date` and `year` in a file, release_date comes from `date`.
    aliases: tuple[str, ...]
    max_chars: int | None = None  # text fields: longer values are rejected
    column: str | None = None  # the tracks column (None: kept in spotify_data)
    max_value: int | None = None  # int fields
    min_value: int | None = None


INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1

# In validation order: a row with several problems is rejected for the first.
FIELDS: tuple[Field, ...] = (
    Field("title", "text", ("title", "song", "song_title", "song_name", "track_name",
                            "track_title", "track"), 1_000, "title"),
    Field("artist", "text", ("artist", "artist_name", "artists", "singer", "performer"),
          1_000, "artist"),
    Field("lyrics", "text", ("lyrics", "lyric", "song_lyrics", "text"), 200_000, "lyrics"),
    Field("release_date", "date", ("release_date", "date", "released", "release_year", "year"),
          column="release_date"),
    Field("album", "text", ("album", "album_name", "album_title"), 1_000, "album"),
    Field("url", "text", ("url", "link", "song_url", "genius_url", "lyrics_url"), 2_048, "url"),
    # `id` is the Genius id in the Genius datasets (Kaggle "Genius Song Lyrics"); it is
    # used only when no other Genius id column is there (the original platform's
    # SQLite file has both: its `id` is its own row number).
    Field("genius_id", "int", ("genius_id", "genius_song_id", "id"), column="genius_id",
          min_value=1, max_value=INT8_MAX),
    Field("language", "text", ("language", "lang", "language_ft", "language_cld3"), 64,
          "language"),
    Field("genre", "text", ("genre", "tag", "tags"), 200, "genre"),
    Field("views", "int", ("views", "pageviews", "page_views"), min_value=0,
          max_value=INT8_MAX),
    Field("features", "features", ("features", "featured_artists", "featuring", "feat"),
          10_000),
    Field("explicit", "bool", ("explicit",), column="explicit"),
    Field("song_art_url", "text", ("song_art_url", "song_art_image_url"), 2_048,
          "song_art_url"),
    Field("popularity_score", "int", ("popularity_score", "popularity"),
          column="popularity_score", min_value=-INT4_MAX - 1, max_value=INT4_MAX),
    Field("lyrics_quality_score", "float", ("lyrics_quality_score",),
          column="lyrics_quality_score"),
    Field("scraped_date", "timestamp", ("scraped_date",), column="scraped_date"),
    Field("spotify_data", "json", ("spotify_data",), 1_000_000, "spotify_data"),
)  # fmt: skip

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
REQUIRED = ("title", "artist")
# Mapped to spotify_data[IMPORT_KEY] rather than a column of their own.
EXTRAS = ("views", "features")
