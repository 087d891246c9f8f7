-- ScrapeJob (issue 6): artists are the run's items (run_items.payload = name); what
-- scraping them found is recorded here, in the same transaction as the tracks.

-- Per-shard scrape counters, beside run_shards and keyed the same way. A row is
-- created by a shard's first commit; status reads these rows only (O(shards)).
CREATE TABLE scrape_counters (
    run_id          bigint NOT NULL,
    shard           integer NOT NULL,
    songs_found     integer NOT NULL DEFAULT 0,  -- songs listed (non-songs excluded, capped)
    tracks_new      integer NOT NULL DEFAULT 0,  -- inserted into tracks
    tracks_updated  integer NOT NULL DEFAULT 0,  -- re-fetched and changed
    duplicates      integer NOT NULL DEFAULT 0,  -- already in tracks (not re-fetched, or unchanged)
    songs_skipped   integer NOT NULL DEFAULT 0,  -- no lyrics on the page (instrumental, empty)
    songs_failed    integer NOT NULL DEFAULT 0,  -- could not be fetched after retries
    non_songs       integer NOT NULL DEFAULT 0,  -- tracklists, interviews, ... (not counted as songs)
    spotify_matched integer NOT NULL DEFAULT 0,
    spotify_missed  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, shard),
    FOREIGN KEY (run_id, shard) REFERENCES run_shards (run_id, shard) ON DELETE CASCADE
);

-- One row per Genius song entry a ScrapeJob run handled. The primary key makes a
-- replayed batch (a killed pod re-processing its current artist) a no-op, and the
-- counters above grow only by rows actually inserted here. A chained AnalysisRun
-- selects the tracks a run inserted or updated from this table.
CREATE TABLE scrape_songs (
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    genius_id   bigint NOT NULL,
    artist_item bigint NOT NULL,  -- run_items.item_id of the artist
    shard       integer NOT NULL,
    track_id    integer REFERENCES tracks (id) ON DELETE SET NULL,
    outcome     text NOT NULL CHECK (outcome IN
                ('inserted', 'updated', 'unchanged', 'duplicate', 'skipped', 'not_song', 'failed')),
    spotify     text CHECK (spotify IN ('matched', 'missed', 'error')),
    detail      text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, genius_id)
);
CREATE INDEX scrape_songs_changed_idx ON scrape_songs (run_id, track_id)
    WHERE outcome IN ('inserted', 'updated');

-- How each artist name was resolved to a Genius artist: the exact-name match, and
-- the other candidates the search returned (ambiguous = more than one exact match).
CREATE TABLE scrape_artists (
    run_id           bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    item_id          bigint NOT NULL,
    name             text NOT NULL,
    genius_artist_id bigint,
    matched_name     text,
    ambiguous        boolean NOT NULL DEFAULT false,
    candidates       jsonb NOT NULL DEFAULT '[]',
    songs_listed     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, item_id)
);

-- Several global budgets per run (a ScrapeJob has one per upstream API: genius,
-- spotify). Existing budgets (the llm analyzer's) become budget 'default'.
ALTER TABLE rate_limit_slots DROP CONSTRAINT rate_limit_slots_run_id_fkey;
ALTER TABLE rate_limit_slots DROP CONSTRAINT rate_limit_slots_pkey;
ALTER TABLE rate_limits DROP CONSTRAINT rate_limits_pkey;
ALTER TABLE rate_limits ADD COLUMN budget text NOT NULL DEFAULT 'default';
ALTER TABLE rate_limit_slots ADD COLUMN budget text NOT NULL DEFAULT 'default';
ALTER TABLE rate_limits ADD PRIMARY KEY (run_id, budget);
ALTER TABLE rate_limit_slots ADD PRIMARY KEY (run_id, budget, slot);
ALTER TABLE rate_limit_slots ADD FOREIGN KEY (run_id, budget)
    REFERENCES rate_limits (run_id, budget) ON DELETE CASCADE;
DROP INDEX rate_limit_slots_free_idx;
CREATE INDEX rate_limit_slots_free_idx ON rate_limit_slots (run_id, budget, free_at);
