-- Issue 23: models are stored with skops instead of pickle (quality/storage.py), and
-- each row records what wrote it, so a runtime with another scikit-learn refuses it
-- instead of predicting with estimators whose internals may have changed. Nullable and
-- added, not changed: rows written before this migration (format 'pickle', NULL
-- versions) stay readable as metadata (`model list`) and are refused on load with
-- the command that retrains them.
ALTER TABLE models
    ADD COLUMN sklearn_version text,   -- sklearn.__version__ of the process that trained it
    ADD COLUMN format_version text;    -- the skops version that serialized `estimators`
