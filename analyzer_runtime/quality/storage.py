"""The `models` table (migrations 0009, 0014): save a trained model, find and load one.

Serialization: skops (`skops.io`), never pickle. A row's bytes are a zip of JSON and
NumPy arrays that skops rebuilds without running code from the file: every type the
file names is checked before anything is imported or constructed, and a type outside
skops's defaults (builtins, NumPy, scikit-learn's estimators) and our explicit
TRUSTED list is refused. TRUSTED holds only what `rap-analyzer model train` stores:
HistGradientBoostingRegressor and the TreePredictor objects its fitted trees are (the
sentiment head's HistGradientBoostingClassifier is among skops's defaults, its
calibration plain float arrays).
So write access to the `models` table is no longer code execution in the quality
pods: a tampered or foreign row fails closed (ModelCorrupt) before any code runs.

Each row also records the scikit-learn and skops versions that wrote it. Loading
refuses (ModelUnusable) rather than warns when
- the row is a pickle (`format = 'pickle'`, written before skops): it is never
  unpickled, whatever its sha256 says; the message names the command to retrain;
- scikit-learn's major.minor differs from this process's: scikit-learn does not keep
  a fitted estimator's internals compatible across minor releases, and a model that
  loads but predicts differently would write wrong scores silently. Retraining takes
  seconds from the labels already stored, so the run waits (Pending, naming the
  command) instead. A different patch release is accepted.
The metadata checks need no deserialization, so `find` applies them too: the operator
keeps a quality run Pending with the retrain command instead of starting shards that
would fail. The sha256 (of the bytes, checked before parsing) catches corruption and a
partial write; it is in the same row, so it proves nothing against a deliberate edit:
the trusted-types check is what stops that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import metadata
from typing import Any

import asyncpg

from analyzer_runtime.ledger import models
from analyzer_runtime.ledger.models import (
    FORMAT,
    LEGACY_PICKLE,
    ModelNotFound,
    ModelUnusable,
    StoredModel,
    check_usable,
    list_models,
    list_versions,
    sklearn_version,
    train_command,
)

# The metadata half (find without loading, the exceptions, the checks) is the ledger's
# (ledger/models.py), which the operator uses; this module adds saving and loading.
__all__ = [
    "FORMAT", "LEGACY_PICKLE", "TRUSTED", "ModelCorrupt", "ModelNotFound", "ModelUnusable",
    "StoredModel", "check_usable", "dumps", "find", "list_models", "list_versions", "loads",
    "save", "sklearn_version", "train_command",
]  # fmt: skip

# The only types `rap-analyzer model train` stores that skops does not trust by default,
# plus the estimator itself, named so the list says what a model is. skops adds these
# to its defaults (it has no way to narrow them); `loads` then checks that what came
# out is exactly {target: HistGradientBoostingRegressor}.
_HGB = "sklearn.ensemble._hist_gradient_boosting"
ESTIMATOR_TYPE = f"{_HGB}.gradient_boosting.HistGradientBoostingRegressor"
TRUSTED = (ESTIMATOR_TYPE, f"{_HGB}.predictor.TreePredictor")


class ModelCorrupt(ModelUnusable):
    """The stored bytes do not match their sha256, are not a skops file, or name a type
    that is not trusted; nothing from them was run."""


def dumps(estimators: dict[str, Any]) -> tuple[bytes, str]:
    import zipfile

    import skops.io

    blob = skops.io.dumps(estimators, compression=zipfile.ZIP_DEFLATED)
    return blob, hashlib.sha256(blob).hexdigest()


def loads(blob: bytes, sha256: str, targets: list[str] | None = None) -> dict[str, Any]:
    """The estimators in a skops `blob` (its format and versions already checked:
    check_usable). ModelCorrupt, having run nothing from the blob, when its sha256 is
    not `sha256`, it is not a skops file, or it names a type outside the trusted ones;
    also when what it holds is not {target: HistGradientBoostingRegressor} (with, since
    issue 25, a HistGradientBoostingClassifier `sentiment` and its calibration arrays)."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    got = hashlib.sha256(blob).hexdigest()
    if got != sha256:
        raise ModelCorrupt(
            f"the stored model's bytes have sha256 {got[:12]}…, not the {sha256[:12]}… recorded"
            f" when it was trained; train it again: {train_command()}"
        )
    try:
        # Reads the file's JSON schema only: no module is imported, nothing constructed.
        untrusted = sorted(set(skops.io.get_untrusted_types(data=blob)) - set(TRUSTED))
    except Exception as exc:  # a zip, JSON or schema error: anything but a skops file
        raise ModelCorrupt(
            f"the stored model is not a readable skops file ({type(exc).__name__}); it was not"
            f" written by `rap-analyzer model train`. Train it again: {train_command()}"
        ) from None
    if untrusted:
        raise ModelCorrupt(
            f"the stored model names types that are not trusted ({', '.join(untrusted)}) and"
            " was refused without loading them; it was not written by `rap-analyzer model"
            f" train` (a foreign or tampered row). Train it again: {train_command()}"
        )
    try:
        out: dict[str, Any] = skops.io.loads(blob, trusted=list(TRUSTED))
    except UntrustedTypesFoundException as exc:  # the audit above should have said so
        raise ModelCorrupt(f"the stored model was refused by skops: {exc}") from None
    _check_estimators(out, targets)
    return out


def _expected_type(key: str, value: Any) -> bool:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from analyzer_runtime.quality import agreement

    if key == agreement.SENTIMENT:
        return type(value) is HistGradientBoostingClassifier
    if key == agreement.CALIBRATION:
        return agreement.is_calibration(value)
    return type(value) is HistGradientBoostingRegressor


def _check_estimators(out: Any, targets: list[str] | None) -> None:
    # {target: regressor}, plus (issue 25) the cascade's sentiment classifier and its
    # calibration arrays; a model stored before them has neither and loads as before.
    ok = (
        isinstance(out, dict)
        and all(isinstance(k, str) for k in out)
        and all(_expected_type(k, v) for k, v in out.items())
        and (targets is None or list(out) == list(targets))
    )
    if not ok:
        shape = (
            {k: type(v).__name__ for k, v in out.items()}
            if isinstance(out, dict)
            else type(out).__name__
        )
        raise ModelCorrupt(
            f"the stored model holds {shape}, not one HistGradientBoostingRegressor per"
            f" target ({targets}); train it again: {train_command()}"
        )


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
                                   training_tracks, format, estimators, sha256,
                                   sklearn_version, format_version)
               VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6, $7, $8, $9, $10, $11, $12)
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
            sklearn_version(),
            metadata.version("skops"),
        )
    return StoredModel(
        name, version, features, list(estimators), metrics, training_run, training_tracks,
        digest, row["created_at"], estimators, FORMAT, sklearn_version(), metadata.version("skops"),
    )  # fmt: skip


async def find(
    conn: asyncpg.Connection, name: str, version: int | None = None, *, load: bool = False
) -> StoredModel:
    """Version `version` of model `name` (None: the latest); ModelNotFound otherwise.
    `load`: with its estimators (checked and deserialized: `loads`)."""
    model = await models.find(conn, name, version)
    if not load:
        return model
    check_usable(model.name, model.version, model.format, model.sklearn_version)
    blob = await conn.fetchval(
        "SELECT estimators FROM models WHERE name = $1 AND version = $2", name, model.version
    )
    return dataclasses.replace(model, estimators=loads(bytes(blob), model.sha256, model.targets))
