"""Postgres access: where the database is, connections, migrations."""
