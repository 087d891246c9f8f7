-- Issue 13: sentence embeddings of the lyrics, one vector per (track, model).
-- Written by the `embedding` analyzer inside the shard protocol's batch transaction
-- (the same one that writes its analysis_results row and moves the run's items), so a
-- killed shard never leaves a vector without a counted item or the other way round.
-- A separate table rather than tracks.lyrics_embedding: it says which model made the
-- vector (a new model never silently mixes with the old in one index) and which run.
CREATE TABLE track_embeddings (
    track_id   integer NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    model      text NOT NULL,
    embedding  vector(384) NOT NULL,
    run_id     bigint REFERENCES runs (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (track_id, model)
);
-- Approximate nearest neighbours by cosine distance (`<=>`), what search and similar
-- order by. pgvector's defaults (m 16, ef_construction 64); ef_search is set per query.
CREATE INDEX track_embeddings_hnsw_idx
    ON track_embeddings USING hnsw (embedding vector_cosine_ops);
