-- The corpus as the original platform had it, with one result per
-- (track, analyzer_type, model_version) instead of duplicates.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE tracks (
    id                   serial PRIMARY KEY,
    title                text NOT NULL,
    artist               text NOT NULL,
    lyrics               text,
    url                  text,
    genius_id            bigint UNIQUE,
    scraped_date         timestamptz NOT NULL DEFAULT now(),
    word_count           integer,
    genre                text,
    release_date         date,
    album                text,
    language             text,
    explicit             boolean,
    song_art_url         text,
    popularity_score     integer,
    lyrics_quality_score real,
    created_at           timestamptz NOT NULL DEFAULT now(),
    spotify_data         jsonb,
    lyrics_embedding     vector(384),
    audio_embedding      vector(128)
);
CREATE INDEX tracks_artist_idx ON tracks (artist);
CREATE INDEX tracks_spotify_data_idx ON tracks USING gin (spotify_data);

CREATE TABLE analysis_results (
    id                 serial PRIMARY KEY,
    track_id           integer NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    analyzer_type      varchar(50) NOT NULL,
    model_version      varchar(100) NOT NULL,
    sentiment          varchar(50),
    confidence         numeric(5, 4) CHECK (confidence BETWEEN 0 AND 1),
    themes             jsonb NOT NULL DEFAULT '[]',
    complexity_score   numeric(5, 4) CHECK (complexity_score BETWEEN 0 AND 1),
    analysis_data      jsonb NOT NULL DEFAULT '{}',
    processing_time_ms integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analysis_results_one_per_version UNIQUE (track_id, analyzer_type, model_version)
);
CREATE INDEX analysis_results_analyzer_type_idx ON analysis_results (analyzer_type);
CREATE INDEX analysis_results_created_at_idx ON analysis_results (created_at);
