-- The llm analyzer (issue 5): a global request budget per run, shared by all its
-- shards (analyzer_runtime/ratelimit.py), and the planning-time estimate.

-- One row per run that has a budget: `requests` per `window_seconds`, and a pause
-- set from a provider's Retry-After that every shard honours.
CREATE TABLE rate_limits (
    run_id         bigint PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    requests       integer NOT NULL CHECK (requests >= 1),
    window_seconds double precision NOT NULL CHECK (window_seconds > 0),
    paused_until   timestamptz NOT NULL DEFAULT '-infinity'
);

-- `requests` slots per run. A request may be sent only while holding a slot, and a
-- slot is granted again only `window_seconds` after its previous request ENDED
-- (free_at). So two requests of one slot are at least a window apart, and any
-- window holds at most one request per slot: never more than `requests`.
-- While a request is in flight, free_at is its lease end (timeout + margin + window),
-- so a pod killed mid-request cannot leak a slot.
CREATE TABLE rate_limit_slots (
    run_id  bigint NOT NULL REFERENCES rate_limits (run_id) ON DELETE CASCADE,
    slot    integer NOT NULL,
    free_at timestamptz NOT NULL DEFAULT '-infinity',
    holder  uuid,
    PRIMARY KEY (run_id, slot)
);
CREATE INDEX rate_limit_slots_free_idx ON rate_limit_slots (run_id, free_at);

-- What a run will cost, computed once at planning time (before any request).
CREATE TABLE run_estimates (
    run_id     bigint PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    estimate   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
