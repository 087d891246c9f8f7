"""`rap-analyzer import FILE`: lyrics datasets (CSV/TSV, JSON Lines, Parquet, the
original platform's SQLite file) into `tracks`, streamed, idempotent, with a rejects
file for the rows that cannot go in.

Layout: `readers` (one streaming reader per format), `mapping` (columns -> fields),
`values` (checks and conversions, pure), `words` (word_count), `seen` (keys already
imported from this file), `rejects` (the rejects file), `loader` (Postgres: COPY into
a per-transaction stage, merge by natural key), `pipeline` (all of it, chunk by chunk).
"""

from analyzer_runtime.corpus_import.pipeline import (
    ImportInputError,
    Prepared,
    Progress,
    Summary,
    prepare,
    run_import,
)

__all__ = ["ImportInputError", "Prepared", "Progress", "Summary", "prepare", "run_import"]
