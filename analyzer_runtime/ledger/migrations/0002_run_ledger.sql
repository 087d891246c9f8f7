-- The run ledger behind the shard protocol (analyzer_runtime/ledger/shards.py).
-- Status is read from run_shards only: O(shards), never a count over items.
CREATE TABLE runs (
    id            bigserial PRIMARY KEY,
    uid           text NOT NULL UNIQUE,          -- the custom resource's metadata.uid
    kind          text NOT NULL DEFAULT 'AnalysisRun',
    namespace     text,
    name          text NOT NULL,
    analyzer_type text,
    model_version text,
    spec          jsonb NOT NULL,
    shards        integer NOT NULL CHECK (shards >= 1),
    total         integer NOT NULL DEFAULT 0,
    state         text NOT NULL DEFAULT 'planned'
                  CHECK (state IN ('planned', 'running', 'succeeded', 'failed', 'cancelled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    cancelled_at  timestamptz
);

CREATE TABLE run_shards (
    run_id            bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    shard             integer NOT NULL,
    total             integer NOT NULL DEFAULT 0,
    processed         integer NOT NULL DEFAULT 0,
    failed            integer NOT NULL DEFAULT 0,
    skipped           integer NOT NULL DEFAULT 0,
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempt           integer NOT NULL DEFAULT 0,
    heartbeat_at      timestamptz,
    started_at        timestamptz,
    finished_at       timestamptz,
    tokens_prompt     bigint NOT NULL DEFAULT 0,
    tokens_completion bigint NOT NULL DEFAULT 0,
    fallback_used     integer NOT NULL DEFAULT 0,
    last_error        text,
    PRIMARY KEY (run_id, shard)
);

-- One row per work item: a track id (AnalysisRun) or an artist (ScrapeJob, payload = name).
CREATE TABLE run_items (
    run_id     bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    item_id    bigint NOT NULL,
    shard      integer NOT NULL,
    payload    text,
    state      text NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending', 'done', 'failed', 'skipped')),
    attempts   integer NOT NULL DEFAULT 0,
    last_error text,
    updated_at timestamptz,
    PRIMARY KEY (run_id, item_id)
);
-- Workers only ever look for their shard's pending items, in order.
CREATE INDEX run_items_pending_idx ON run_items (run_id, shard, item_id) WHERE state = 'pending';
