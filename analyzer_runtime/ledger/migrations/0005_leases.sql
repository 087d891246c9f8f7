-- Leases on claimed work items (ledger/shards.py): a claimed batch names its claimer and
-- expires unless the claimer's heartbeat renews it. Only expired leases are
-- re-claimed, only the holder completes its items, and a crash is charged to an item
-- only when its lease expired with the item unfinished (`crashes`); `attempts` keeps
-- counting claims.
ALTER TABLE run_items
    ADD COLUMN claimed_by    text,
    ADD COLUMN lease_expires timestamptz,
    ADD COLUMN crashes       integer NOT NULL DEFAULT 0;

-- `interrupted`: a local run whose runner was stopped (Ctrl-C, SIGTERM) or died; it
-- resumes with `rap-analyzer run --uid`. `driver` is that runner (host:pid); NULL for
-- runs driven by the operator.
ALTER TABLE runs DROP CONSTRAINT runs_state_check;
ALTER TABLE runs ADD CONSTRAINT runs_state_check
    CHECK (state IN ('planned', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'));
ALTER TABLE runs ADD COLUMN driver text;

-- Overlap checks look for active runs of one analyzer and version.
CREATE INDEX runs_active_idx ON runs (analyzer_type, model_version)
    WHERE state IN ('planned', 'running', 'interrupted');
