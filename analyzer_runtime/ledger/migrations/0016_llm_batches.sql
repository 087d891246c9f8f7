-- Issue 25: the LLM lane's Batch API (`spec.llm.mode: batch`). New tables only
-- (expand/contract): the previous release never names them.
--
-- One row per batch a shard submits (analyzer_runtime/ledger/batches.py writes it).
-- The row is recorded BEFORE the provider's batch is created and carries its own id
-- in the batch's metadata, so a crash between the two is adopted, never submitted
-- twice. While a batch is in flight its items are leased to the claimer
-- `batch:<id>` until `lease_expires` (the completion window and a margin): no other
-- claimer takes them, and any pod of the shard can collect them.
CREATE TABLE llm_batches (
    id                bigserial PRIMARY KEY,
    run_id            bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    shard             integer NOT NULL,
    -- The provider's batch object: NULL until batches.create answered.
    provider_batch_id text,
    input_file_id     text,
    output_file_id    text,
    error_file_id     text,
    -- 'submitting' (recorded, not created yet), then the provider's status:
    -- validating, in_progress, finalizing, completed, failed, expired, cancelling,
    -- cancelled.
    state             text NOT NULL DEFAULT 'submitting',
    requests_total     integer NOT NULL DEFAULT 0,
    requests_completed integer NOT NULL DEFAULT 0,
    requests_failed    integer NOT NULL DEFAULT 0,
    items             integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz,
    -- Set in the transaction that writes the batch's results: collected once.
    collected_at      timestamptz,
    last_error        text
);
-- A shard resumes its unfinished batches; status counts a run's batches by state.
CREATE INDEX llm_batches_open_idx ON llm_batches (run_id, shard) WHERE collected_at IS NULL;
CREATE INDEX llm_batches_run_idx ON llm_batches (run_id);

-- The items of a batch: which request (`custom_id`) and which key the model saw
-- (prompt.py's random per-request key) and where in the pack. An item's submissions
-- are its rows here (bounded by spec.llm.batch.maxSubmissions).
CREATE TABLE llm_batch_items (
    batch_id  bigint NOT NULL REFERENCES llm_batches (id) ON DELETE CASCADE,
    run_id    bigint NOT NULL,
    item_id   bigint NOT NULL,
    custom_id text NOT NULL,
    key       text NOT NULL,
    position  integer NOT NULL,
    -- How its line ended when the batch was collected: done, error, missing,
    -- unusable, untrusted, ignored (no longer held); NULL while in flight.
    outcome   text,
    -- Why it was not answered (the error line, the parse problem, the refusal).
    reason    text,
    PRIMARY KEY (batch_id, item_id)
);
CREATE INDEX llm_batch_items_item_idx ON llm_batch_items (run_id, item_id);
