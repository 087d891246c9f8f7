-- ScrapeJob against the services as they really behave (issue 11).

-- Songs whose page (or API call) kept answering a Cloudflare challenge. They are
-- failed songs too (songs_failed counts them); this counts the blocked ones apart.
ALTER TABLE scrape_counters ADD COLUMN songs_blocked integer NOT NULL DEFAULT 0;

-- Why a song failed, machine-readable ('blocked'); detail keeps the message.
ALTER TABLE scrape_songs ADD COLUMN reason text;

-- Things a shard learned once about an upstream, reported once: 'spotify_unavailable'
-- (the app is refused: token or search 400/401/403), 'audio_features_off' (403 on
-- audio-features), 'genius_blocked' (the first song blocked by a challenge). The
-- first shard to record a kind wins; the operator sets `announced` when it has sent
-- the Event.
CREATE TABLE scrape_notes (
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    shard       integer NOT NULL,
    message     text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    announced   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, kind)
);
