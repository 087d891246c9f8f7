"""The commands of `rap-analyzer`, one module per group or concern; `analyzer_runtime.cli`
builds the app from them. `common` holds what they share (consoles, exit codes, the
database wrapper)."""
