"""The `models` table's metadata (migrations 0009, 0014), read without loading a model:
which trained model a run uses, whether this release can load it, and the pin of a run
to its model (`run_models`, written at planning).

The operator checks a quality run's model here before planning it (the run waits,
Pending, naming the command that trains one); the runtime's quality/storage.py saves
models and loads their estimators (skops, scikit-learn), which the operator's image
does not have.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import asyncpg

FORMAT = "skops"
LEGACY_PICKLE = "pickle"
QUALITY_MODEL = "quality"  # the name `rap-analyzer model train quality` stores under
# The target of the sentiment head the llm cascade needs (quality/agreement.py).
SENTIMENT = "sentiment"
# scikit-learn in the worker image (requirements/image.txt; a unit test keeps them
# equal): what the operator, which has no scikit-learn, checks a model against.
WORKER_SKLEARN_VERSION = "1.9.1"


class ModelNotFound(ValueError):
    """No model with that name (and version): the message names the command to run."""


class ModelUnusable(ModelNotFound):
    """The row exists but this runtime will not load it (a pickle, another scikit-learn,
    an unknown format): for the operator the same as missing (the run waits, naming the
    command that trains a usable one)."""


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
    format: str = FORMAT
    sklearn_version: str | None = None
    format_version: str | None = None  # the skops version that wrote it


def sklearn_version() -> str:
    """The scikit-learn the quality shards load models with: this process's (from the
    installed metadata, without importing it), or, in the operator's image, which has
    none, the worker image's (WORKER_SKLEARN_VERSION)."""
    try:
        return metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        return WORKER_SKLEARN_VERSION


def _minor(version: str | None) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(m[1]), int(m[2])) if m else None


def check_usable(
    name: str, version: int, fmt: str, trained_with: str | None, *, running: str | None = None
) -> None:
    """ModelUnusable unless model `name` v`version`, stored as `fmt` by scikit-learn
    `trained_with`, can be loaded by this process (scikit-learn `running`)."""
    what = f"{name} model version {version}"
    if fmt == LEGACY_PICKLE:
        raise ModelUnusable(
            f"{what} was stored as a pickle by an older rap-analyzer; pickles are no longer"
            " loaded (loading one runs whatever code it contains). Train it again:"
            f" {train_command(name)}"
        )
    if fmt != FORMAT:
        raise ModelUnusable(
            f"{what} is stored as {fmt!r}, which this rap-analyzer cannot load (it reads"
            f" {FORMAT!r}); train it again: {train_command(name)}"
        )
    running = running or sklearn_version()
    ours, theirs = _minor(running), _minor(trained_with)
    if theirs is None or ours != theirs:
        raise ModelUnusable(
            f"{what} was trained with scikit-learn {trained_with or '(unrecorded)'} and this"
            f" runtime has {running}; fitted models are not portable across scikit-learn"
            f" minor versions. Train it again with this image: {train_command(name)}"
        )


_META = """name, version, features, targets, metrics, training_run, training_tracks,
           sha256, created_at, format, sklearn_version, format_version"""


def _stored(row: asyncpg.Record) -> StoredModel:
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
        format=row["format"],
        sklearn_version=row["sklearn_version"],
        format_version=row["format_version"],
    )


async def _table_exists(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('models') IS NOT NULL"))


async def find(conn: asyncpg.Connection, name: str, version: int | None = None) -> StoredModel:
    """Version `version` of model `name` (None: the latest), its metadata only (the
    runtime's quality/storage.py loads the estimators); ModelNotFound otherwise."""
    row = None
    if await _table_exists(conn):
        row = await conn.fetchrow(
            f"""SELECT {_META} FROM models WHERE name = $1 AND ($2::int IS NULL OR version = $2)
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
    try:
        # Before anything is loaded (and without loading): the operator keeps a run whose
        # model this runtime would refuse Pending, naming the command, instead of
        # starting shards that fail.
        check_usable(row["name"], row["version"], row["format"], row["sklearn_version"])
    except ModelUnusable as exc:
        if version is None:
            raise
        raise ModelUnusable(
            f"{exc}, then set spec.modelVersion to the new version (or leave it out for the latest)"
        ) from None
    return _stored(row)


async def list_versions(conn: asyncpg.Connection, name: str) -> list[int]:
    if not await _table_exists(conn):
        return []
    rows = await conn.fetch("SELECT version FROM models WHERE name = $1 ORDER BY version", name)
    return [r[0] for r in rows]


async def list_models(conn: asyncpg.Connection) -> list[StoredModel]:
    if not await _table_exists(conn):
        return []
    rows = await conn.fetch(f"SELECT {_META} FROM models ORDER BY name, version")
    return [_stored(r) for r in rows]


def require_head(model: StoredModel) -> None:
    """ModelUnusable unless `model` has the sentiment head the llm cascade needs."""
    if SENTIMENT not in model.targets:
        raise ModelUnusable(
            f"spec.llm.cascade.analyzer quality needs a quality model that predicts the"
            f" LLM's sentiment; {model.name} model version {model.version} was trained"
            " without it (trained before the cascade existed, or from labels without a"
            f" sentiment). Train it again: {train_command(model.name)}"
        )


async def pinned(conn: asyncpg.Connection, run_id: int) -> StoredModel | None:
    """The model run `run_id` was pinned to at planning, or None."""
    row = await conn.fetchrow("SELECT name, version FROM run_models WHERE run_id = $1", run_id)
    return None if row is None else await find(conn, row["name"], row["version"])


async def pin(
    conn: asyncpg.Connection, run_id: int, version: int | None, *, name: str = QUALITY_MODEL
) -> StoredModel:
    """Pin run `run_id` to model `name` v`version` (None: the latest) unless it is pinned
    already; the pinned model. ModelNotFound (ModelUnusable) when there is none usable."""
    if (model := await pinned(conn, run_id)) is not None:
        return model
    model = await find(conn, name, version)
    await conn.execute(
        """INSERT INTO run_models (run_id, name, version) VALUES ($1, $2, $3)
           ON CONFLICT (run_id) DO NOTHING""",
        run_id,
        model.name,
        model.version,
    )
    return model
