-- Issue 21: `rap-analyzer db adopt` (analyzer_runtime/db/adopt.py) brings a database in
-- the original platform's schema to this one without losing a row. What the new rules
-- do not allow is moved here, whole, rather than deleted. Every database has these
-- tables (empty unless adopted): adopt creates them with this same file before it moves
-- anything, and the statements are idempotent, so this migration is a no-op there.

-- Analyses the one-row-per-(track, analyzer, version) rule leaves out: the older rows
-- of a duplicated key (`kept_id` is the row that stayed) and rows whose track does not
-- exist (`orphan`). `row` is the whole legacy row as it was, every column included.
CREATE TABLE IF NOT EXISTS analysis_results_legacy_duplicates (
    id            integer PRIMARY KEY,
    track_id      integer,
    analyzer_type text,
    model_version text,
    reason        text NOT NULL CHECK (reason IN ('duplicate', 'orphan')),
    kept_id       integer,
    "row"         jsonb NOT NULL,
    moved_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS analysis_results_legacy_duplicates_track_idx
    ON analysis_results_legacy_duplicates (track_id);

-- Tracks that shared a Genius id with an earlier track (the first keeps it in
-- tracks.genius_id, which is unique here): their own Genius id, kept here.
CREATE TABLE IF NOT EXISTS tracks_legacy_genius_ids (
    track_id  integer PRIMARY KEY REFERENCES tracks (id) ON DELETE CASCADE,
    genius_id bigint NOT NULL,
    kept_by   integer NOT NULL,
    moved_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per adoption: the report `db adopt --json` printed (before/after counts).
CREATE TABLE IF NOT EXISTS schema_adoptions (
    id         bigserial PRIMARY KEY,
    adopted_at timestamptz NOT NULL DEFAULT now(),
    report     jsonb NOT NULL
);
