"""The ledger: the only writer of the run, shard, batch and scrape tables, and the
Postgres plumbing under them (connections, migrations, the connection budget).

It imports only `analyzer_runtime.contract` (and itself): the operator, which ships
contract and ledger without the runtime, plans runs, reads their counters and
collects them through this package alone. The layer table is
tests/unit/test_import_layers.py."""
