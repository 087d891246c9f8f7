-- Issue 16: indexes reviewed against the real queries at 1,000,000 tracks and
-- 3,000,000 results (EXPLAIN (ANALYZE, BUFFERS) plans in bench/RESULTS.md).
--
-- The `onlyMissing` anti-join looks up results by (analyzer_type, model_version) for
-- every track in id order. With this index it reads only that analyzer version's
-- entries, index-only and already sorted by track_id, and merges them against the
-- tracks primary key: no heap access to the results and no sort. The old
-- (analyzer_type) index is its prefix, so it goes: one index replaced by another,
-- no extra write cost for the result upserts.
CREATE INDEX analysis_results_version_track_idx
    ON analysis_results (analyzer_type, model_version, track_id);
DROP INDEX analysis_results_analyzer_type_idx;

-- Planning writes a run's items in the same transaction as the run (protocol.record_plan,
-- the only writer of run_items), so the foreign key to runs checked nothing, yet its
-- per-row check was half the time of planning a million items (4.3 of 8.1 s,
-- bench/RESULTS.md issue 16). It goes; deleting a run still deletes its items, by a
-- statement-level trigger (one DELETE per statement, on the primary key's leading
-- run_id). NB: `TRUNCATE runs` no longer reaches run_items (nothing here truncates runs).
ALTER TABLE run_items DROP CONSTRAINT run_items_run_id_fkey;

CREATE FUNCTION run_items_delete_with_run() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM run_items WHERE run_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_delete_items AFTER DELETE ON runs
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION run_items_delete_with_run();
