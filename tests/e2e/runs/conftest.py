"""Fixtures for the operator's end-to-end tests (see operator_env.py)."""

from tests.e2e.runs.operator_env import env, pg_e2e  # noqa: F401
