-- Issue 16: housekeeping of the run ledger (`rap-analyzer db gc`, analyzer_runtime/ledger/gc.py).
-- A finished run older than the retention keeps its runs / run_shards rows (status is
-- read from the shard counters) and only its failed run_items (with their errors);
-- `compacted_at` marks it done, so a second gc passes it by. Results are never touched.
ALTER TABLE runs
    ADD COLUMN compacted_at       timestamptz,
    ADD COLUMN compacted_removed  bigint;

-- gc looks for finished runs not compacted yet.
CREATE INDEX runs_gc_idx ON runs (finished_at)
    WHERE compacted_at IS NULL AND state IN ('succeeded', 'failed', 'cancelled');
