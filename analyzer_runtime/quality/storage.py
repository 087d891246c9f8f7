"""The `models` table (migration 0009): save a trained model, find and load one.

Serialization: the estimators are pickled (Python's pickle, protocol 5) and stored in
`bytea` with their sha256, which `load` checks before unpickling: a row whose bytes
changed after training (corruption, a partial write, a hand edit) is refused instead
of unpickled. Pickle runs code on load, so a `models` row is as trusted as the
database itself: only `rap-analyzer model train` writes it. skops (a safe format
for scikit-learn) would lift that trust requirement but is not a dependency of the
runtime image; see README "Distilled quality model".
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from typing import Any

import asyncpg

FORMAT = "pickle"


class ModelNotFound(ValueError):
    """No model with that name (and version): the message names the command to run."""


class ModelCorrupt(ValueError):
    """The stored bytes do not match their sha256."""


def train_command(name: str = "quality") -> str:
    return f"rap-analyzer model train {name} --from-run <llm AnalysisRun>"


@dataclass(frozen=True)
class StoredModel:
    name: str
    version: int
    features: list[str]
    targets: list[str]
    metrics: dict[str, Any]
    training_run: str | None
    training_tracks: int
    sha256: str
    created_at: Any
    estimators: dict[str, Any] | None = None  # target -> fitted estimator, once loaded


def dumps(estimators: dict[str, Any]) -> tuple[bytes, str]:
    blob = pickle.dumps(estimators, protocol=5)
    return blob, hashlib.sha256(blob).hexdigest()


def loads(blob: bytes, sha256: str) -> dict[str, Any]:
    got = hashlib.sha256(blob).hexdigest()
    if got != sha256:
        raise ModelCorrupt(
            f"the stored model's bytes have sha256 {got[:12]}…, not the {sha256[:12]}… recorded"
            " when it was trained; train it again"
        )
    out: dict[str, Any] = pickle.loads(blob)  # the sha256 above was checked
    return out


async def save(
    conn: asyncpg.Connection,
    *,
    name: str,
    features: list[str],
    estimators: dict[str, Any],
    metrics: dict[str, Any],
    training_run: str | None,
    training_tracks: int,
) -> StoredModel:
    """Store a new version of `name` (the previous highest + 1)."""
    blob, digest = dumps(estimators)
    async with conn.transaction():
        # One writer per name at a time, so two trainings cannot take the same version.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('models:' || $1))", name)
        version = await conn.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = $1", name
        )
        row = await conn.fetchrow(
            """INSERT INTO models (name, version, features, targets, metrics, training_run,
                                   training_tracks, format, estimators, sha256)
               VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6, $7, $8, $9, $10)
               RETURNING created_at""",
            name,
            version,
            json.dumps(features),
            json.dumps(list(estimators)),
            json.dumps(metrics),
            training_run,
            training_tracks,
            FORMAT,
            blob,
            digest,
        )
    return StoredModel(
        name, version, features, list(estimators), metrics, training_run, training_tracks,
        digest, row["created_at"], estimators,
    )  # fmt: skip


def _stored(row: asyncpg.Record, *, with_estimators: bool) -> StoredModel:
    def js(v: Any) -> Any:
        return json.loads(v) if isinstance(v, str) else v

    return StoredModel(
        name=row["name"],
        version=row["version"],
        features=list(js(row["features"])),
        targets=list(js(row["targets"])),
        metrics=dict(js(row["metrics"])),
        training_run=row["training_run"],
        training_tracks=row["training_tracks"],
        sha256=row["sha256"],
        created_at=row["created_at"],
        estimators=loads(bytes(row["estimators"]), row["sha256"]) if with_estimators else None,
    )


async def _table_exists(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('models') IS NOT NULL"))


async def find(
    conn: asyncpg.Connection, name: str, version: int | None = None, *, load: bool = False
) -> StoredModel:
    """Version `version` of model `name` (None: the latest); ModelNotFound otherwise."""
    row = None
    if await _table_exists(conn):
        cols = "*" if load else "name, version, features, targets, metrics, training_run," \
            " training_tracks, sha256, created_at"  # fmt: skip
        row = await conn.fetchrow(
            f"""SELECT {cols} FROM models WHERE name = $1 AND ($2::int IS NULL OR version = $2)
                ORDER BY version DESC LIMIT 1""",
            name,
            version,
        )
    if row is None:
        if version is None:
            raise ModelNotFound(
                f"no {name} model has been trained in this database; train one first:"
                f" {train_command(name)}"
            )
        have = await list_versions(conn, name)
        listed = f" (trained: {', '.join(map(str, have))})" if have else ""
        raise ModelNotFound(
            f"{name} model version {version} does not exist{listed}; train one with"
            f" {train_command(name)}, or leave out spec.modelVersion for the latest"
        )
    return _stored(row, with_estimators=load)


async def list_versions(conn: asyncpg.Connection, name: str) -> list[int]:
    if not await _table_exists(conn):
        return []
    rows = await conn.fetch("SELECT version FROM models WHERE name = $1 ORDER BY version", name)
    return [r[0] for r in rows]


async def list_models(conn: asyncpg.Connection) -> list[StoredModel]:
    if not await _table_exists(conn):
        return []
    rows = await conn.fetch(
        """SELECT name, version, features, targets, metrics, training_run, training_tracks,
                  sha256, created_at FROM models ORDER BY name, version"""
    )
    return [_stored(r, with_estimators=False) for r in rows]
