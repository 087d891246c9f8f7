-- Issue 15: models trained from stored results (the distilled `quality` model), one row
-- per (name, version). Every shard pod loads its model from here, so all shards of a
-- run score with the same bytes. `version` increases per name (1, 2, ...); a new
-- training never replaces an old model, so results stay traceable to their model.
CREATE TABLE models (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    features     jsonb NOT NULL,          -- the feature names, in the estimators' column order
    targets      jsonb NOT NULL,          -- what each estimator predicts (quality, complexity)
    metrics      jsonb NOT NULL,          -- k-fold MAE / Spearman of the model and its baselines
    training_run text,                    -- the AnalysisRun whose labels it learned
    training_tracks integer NOT NULL,
    format       text NOT NULL,           -- how `estimators` is serialized (pickle)
    estimators   bytea NOT NULL,
    sha256       text NOT NULL,           -- of `estimators`; checked before unpickling
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

-- The model version a `quality` run scores with, pinned when the run is planned (the
-- latest then, or spec.modelVersion): every shard, and every resume, loads this one
-- even if a newer model is trained while the run is going.
CREATE TABLE run_models (
    run_id  bigint PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    name    text NOT NULL,
    version integer NOT NULL
);
