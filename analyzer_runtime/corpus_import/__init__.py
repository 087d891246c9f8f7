"""`rap-analyzer import FILE`: lyrics datasets (CSV/TSV, JSON Lines, Parquet, the
original platform's SQLite file) into `tracks`, streamed, idempotent, with a rejects
file for the rows that cannot go in.

Layout: `readers` (one streaming reader per format), `mapping` (columns -> fields),
`values` (checks and conversions, pure), `words` (word_count), `seen` (keys already
imported from this file), `rejects` (the rejects file), `loader` (Postgres: COPY into
a per-transaction stage, merge by natural key), `worker` (the reader process:
reading, checks, COPY text), `pipeline` (all of it, chunk by chunk; the entry point:
`pipeline.prepare` then `pipeline.run_import`). Nothing is imported here: the reader
process starts with only what it needs.
"""
