"""A database in the original platform's schema, with its quirks, for the adoption
tests and `bench/adopt_bench.py`.

The schema is the one the platform documented (its README and AI onboarding guide:
github.com/Vastargazing/rap-scraper-project, docs/AI_ONBOARDING_CHECKLIST.md, and the
appendix of DESIGN.md): `tracks` with `title VARCHAR(500)`, `artist VARCHAR(200)`,
`genius_id INTEGER` without a uniqueness rule, `TIMESTAMP` (no time zone) columns and
an `audio_features` column we never had; `analysis_results` without any uniqueness rule,
`themes TEXT`, `confidence`/`complexity_score NUMERIC` unbounded and a nullable
`model_version`. Its indexes have the platform's own names.

The data has every quirk the issue reports, at the platform's proportions: at the full
size 57,718 tracks and 269,646 analyses, 61,933 `qwen-3-4b-fp8` rows for 57,716
tracks, two `simplified_features` rows per track, and the other analyzer names it
used. Values break the new rules on purpose: themes as JSON arrays, JSON strings, plain
text, empty and NULL; confidences above 1, below 0, in percent, with more than four
decimals; NULL model versions; analysis_data NULL or not an object; tracks sharing a
Genius id; a track without a title. The LLM rows' analysis_data is the platform's
parsed Qwen answer (mood, technical and quality sections).
"""

from __future__ import annotations

import asyncpg

from analyzer_runtime.corpus.synthetic import generate_tracks

FULL_TRACKS = 57_718
FULL_ANALYSES = 269_646

LEGACY_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE tracks (
    id                   SERIAL PRIMARY KEY,
    title                VARCHAR(500),
    artist               VARCHAR(200),
    lyrics               TEXT,
    url                  VARCHAR(500),
    genius_id            INTEGER,
    scraped_date         TIMESTAMP DEFAULT NOW(),
    word_count           INTEGER,
    genre                VARCHAR(100),
    release_date         DATE,
    album                VARCHAR(500),
    language             VARCHAR(10),
    explicit             BOOLEAN,
    song_art_url         VARCHAR(500),
    popularity_score     INTEGER,
    lyrics_quality_score REAL,
    created_at           TIMESTAMP DEFAULT NOW(),
    spotify_data         JSONB,
    audio_features       JSONB,
    lyrics_embedding     vector(384),
    audio_embedding      vector(128)
);
CREATE INDEX idx_tracks_artist ON tracks (artist);
CREATE INDEX idx_tracks_spotify_data ON tracks USING gin (spotify_data);

CREATE TABLE analysis_results (
    id                 SERIAL PRIMARY KEY,
    track_id           INTEGER REFERENCES tracks (id),
    analyzer_type      VARCHAR(50),
    sentiment          VARCHAR,
    confidence         NUMERIC,
    themes             TEXT,
    analysis_data      JSONB,
    created_at         TIMESTAMP DEFAULT NOW(),
    complexity_score   NUMERIC,
    processing_time_ms INTEGER,
    model_version      VARCHAR
);
CREATE INDEX idx_analysis_track_id ON analysis_results (track_id);
CREATE INDEX idx_analysis_analyzer_type ON analysis_results (analyzer_type);
CREATE INDEX idx_analysis_created_at ON analysis_results (created_at);
"""

# (analyzer_type, rows at full size, model_version) besides qwen and simplified_features,
# which have their own shapes below. 92,277 rows in all at full size.
OTHERS = [
    ("gemma-3-27b-it", 34_320, "gemma-3-27b-it"),
    ("emotion_analyzer_v2", 40_000, None),
    ("simplified_features_v2", 15_000, "2.0"),
    ("ollama:llama3.2:3b", 2_857, None),
    ("mock_analyzer_v1", 99, None),  # + 1 orphan below,
]
QWEN_ROWS, QWEN_TRACKS = 61_933, 57_716

# Row i of an analyzer gets quirk i % len(...): every kind appears at every size.
THEMES = [
    '["money", "street life"]',
    '["love"]',
    "[]",
    '"struggle"',  # a JSON string
    "money, fame, loyalty",  # plain text
    "",
    None,
    '["hustle", "family", "success"]',
]
CONFIDENCE = ["0.85", "0.9", "1.5", "-0.2", "85", None, "0.123456", "0.7"]
COMPLEXITY = ["0.42", "0.6", "7.5", None, "0.9999", "0.55555", "0.3", "-1"]
SENTIMENTS = ["positive", "negative", "neutral", "mixed", None]


def scaled(full: int, tracks: int) -> int:
    return max(1, round(full * tracks / FULL_TRACKS))


def _values(name: str, options: list[str | None]) -> str:
    cases = " ".join(
        f"WHEN {i} THEN {'NULL' if v is None else _literal(v)}" for i, v in enumerate(options)
    )
    return f"(CASE ({name} % {len(options)}) {cases} END)"


def _literal(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


LLMS = ("qwen-3-4b-fp8", "gemma-3-27b-it", "ollama:llama3.2:3b")


def _answer(analyzer: str) -> str:
    """analysis_data as the platform stored it (SQL over the row number n). Its LLM
    analyzers stored the parsed answer to the Qwen prompt (genre, mood, content,
    technical and quality sections; analyzer_runtime/legacy_labels.py reads them); the
    others a small dict of their own."""
    if analyzer not in LLMS:
        return "jsonb_build_object('raw', 'legacy ' || n, 'tokens', 200 + n % 80)"
    return """jsonb_build_object(
        'genre_analysis', jsonb_build_object('primary_genre', 'hip-hop'),
        'mood_analysis', jsonb_build_object('primary_mood', 'confident',
            'valence', (ARRAY['positive', 'negative', 'neutral', 'mixed'])[1 + n % 4]),
        'content_analysis', jsonb_build_object('main_themes', jsonb_build_array('money', 'street life')),
        'technical_analysis', jsonb_build_object(
            'complexity_level', (ARRAY['beginner', 'intermediate', 'advanced', 'expert'])[1 + n % 4],
            'rhyme_scheme', 'AABB'),
        'quality_metrics', jsonb_build_object('overall_quality', ((n * 37) % 100) / 100.0))"""


def _analysis_insert(analyzer: str, source: str, version: str | None) -> str:
    """INSERT ... SELECT of legacy analyses from `source`, a query with columns
    (track_id, n, age): n numbers the rows (quirks), age (seconds) orders duplicates."""
    return f"""
        INSERT INTO analysis_results (track_id, analyzer_type, sentiment, confidence, themes,
                                      analysis_data, created_at, complexity_score,
                                      processing_time_ms, model_version)
        SELECT track_id, {_literal(analyzer)}, {_values("n", SENTIMENTS)},
               {_values("n", CONFIDENCE)}::numeric, {_values("n", THEMES)},
               CASE WHEN n % 11 = 0 THEN NULL
                    WHEN n % 13 = 0 THEN to_jsonb('unparsed answer ' || n)
                    ELSE {_answer(analyzer)} END,
               TIMESTAMP '2025-09-01' - make_interval(secs => age),
               {_values("n", COMPLEXITY)}::numeric, 300 + n % 900,
               {"NULL" if version is None else _literal(version)}
        FROM ({source}) s"""


async def build(conn: asyncpg.Connection, tracks: int = FULL_TRACKS) -> dict[str, int]:
    """Create the legacy schema and fill it; returns rows per analyzer_type."""
    await conn.execute(LEGACY_SCHEMA)
    columns = ["title", "artist", "album", "release_date", "url", "lyrics", "word_count",
               "genre", "language", "explicit", "genius_id"]  # fmt: skip
    records = [
        (t.title, t.artist, t.album, t.release_date, t.url, t.lyrics, t.word_count, t.genre,
         t.language, t.explicit, int(t.genius_id - 1_000_000 + 100))
        for t in generate_tracks(tracks, seed=7)
    ]  # fmt: skip
    await conn.copy_records_to_table("tracks", records=records, columns=columns)
    # Scraped twice under two titles: every 997th track shares the Genius id of the one
    # before it. A few have no Genius id, one has no title.
    await conn.execute(
        # Fixed times, not now(): two builds are the same database.
        "UPDATE tracks SET scraped_date = TIMESTAMP '2025-06-01' + id * INTERVAL '1 minute',"
        " created_at = TIMESTAMP '2025-06-01' + id * INTERVAL '1 minute';"
        " UPDATE tracks SET genius_id = genius_id - 1 WHERE id % 997 = 0;"
        " UPDATE tracks SET genius_id = NULL WHERE id % 1499 = 0;"
        " UPDATE tracks SET title = NULL WHERE id = 3;"
        " UPDATE tracks SET audio_features = '{\"tempo\": 92}' WHERE id % 5 = 0;"
        " UPDATE tracks SET created_at = NULL WHERE id = 5;"
    )
    qwen_tracks = min(tracks, scaled(QWEN_TRACKS, tracks))
    qwen_extra = scaled(QWEN_ROWS, tracks) - qwen_tracks
    # qwen: one row per track (the first qwen_tracks), then qwen_extra older or newer
    # duplicates; model_version NULL, as the platform wrote it.
    await conn.execute(
        _analysis_insert(
            "qwen-3-4b-fp8",
            f"SELECT id AS track_id, id AS n, 3600 AS age FROM tracks WHERE id <= {qwen_tracks}"
            f" UNION ALL SELECT 1 + (g * 7) % {qwen_tracks}, g + 100000,"
            f" CASE WHEN g % 2 = 0 THEN 60 ELSE 7200 END"
            f" FROM generate_series(1, {qwen_extra}) g",
            None,
        )
    )
    # simplified_features: two rows per track, a day apart, same (NULL) version.
    await conn.execute(
        _analysis_insert(
            "simplified_features",
            "SELECT id AS track_id, id * 2 + k AS n, 86400 * k AS age"
            " FROM tracks, generate_series(0, 1) k",
            None,
        )
    )
    for analyzer, full, version in OTHERS:
        await conn.execute(
            _analysis_insert(
                analyzer,
                f"SELECT 1 + (g - 1) % {tracks} AS track_id, g AS n, g AS age"
                f" FROM generate_series(1, {scaled(full, tracks)}) g",
                version,
            )
        )
    # One analysis whose track is gone: the platform's FK allowed a NULL track_id.
    await conn.execute(
        "INSERT INTO analysis_results (track_id, analyzer_type, themes, created_at)"
        " VALUES (NULL, 'mock_analyzer_v1', '[]', TIMESTAMP '2025-09-01')"
    )
    rows = await conn.fetch(
        "SELECT analyzer_type, count(*) AS n FROM analysis_results GROUP BY 1 ORDER BY 1"
    )
    return {r["analyzer_type"]: r["n"] for r in rows}
