"""The `models` table with real Postgres (issue 23): a model is stored with skops and the
versions that wrote it (migration 0014), and rows this runtime must not load are
refused with the retrain command, the malicious ones without running their code:
- a pickle row (as written before skops: format 'pickle', no versions) whose
  __reduce__ would write a marker file, with a matching sha256;
- a skops row whose payload would call os.system, with a matching sha256;
- a skops row from another scikit-learn minor.
The latest model being unusable keeps a quality run from being planned (the operator
leaves it Pending, naming the command); an older usable version still loads."""

from __future__ import annotations

import hashlib
import pickle
import shlex
from importlib import metadata
from pathlib import Path

import asyncpg
import pytest

from analyzer_runtime.ledger import planner
from analyzer_runtime.quality import MODEL_NAME, storage
from tests.integration.test_quality import _manifest
from tests.unit.test_quality_storage import _fitted, _skops_calling, _WritesMarker

TRAIN = storage.train_command()


async def _insert(
    conn: asyncpg.Connection, version: int, fmt: str, blob: bytes, sklearn: str | None
) -> None:
    """A row as something other than `model train` (an older release, an attacker with
    write access to the table) would write it."""
    await conn.execute(
        """INSERT INTO models (name, version, features, targets, metrics, training_tracks,
                               format, estimators, sha256, sklearn_version)
           VALUES ($1, $2, '["a","b","c","d"]', '["quality","complexity"]', '{"targets":{}}',
                   120, $3, $4, $5, $6)""",
        MODEL_NAME,
        version,
        fmt,
        blob,
        hashlib.sha256(blob).hexdigest(),
        sklearn,
    )


async def test_unusable_and_malicious_rows_are_refused_without_running_code(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    async with pool.acquire() as conn:
        saved = await storage.save(
            conn, name=MODEL_NAME, features=["a", "b", "c", "d"], estimators=_fitted(),
            metrics={"targets": {}}, training_run="labels", training_tracks=120,
        )  # fmt: skip
        row = await conn.fetchrow(
            "SELECT format, sklearn_version, format_version FROM models WHERE version = 1"
        )
        assert saved.version == 1
        assert dict(row) == {
            "format": "skops",
            "sklearn_version": metadata.version("scikit-learn"),
            "format_version": metadata.version("skops"),
        }
        assert (await storage.find(conn, MODEL_NAME, load=True)).estimators is not None

        # v2: a pickle from before skops, booby-trapped.
        await _insert(conn, 2, "pickle", pickle.dumps(_WritesMarker(marker)), None)
        for load in (False, True):
            with pytest.raises(storage.ModelUnusable, match=f"version 2 .* pickle.*{TRAIN}"):
                await storage.find(conn, MODEL_NAME, load=load)
        # Planning refuses it like a missing model, leaving no run behind.
        with pytest.raises(storage.ModelNotFound, match=f"pickle.*{TRAIN}"):
            await planner.plan_manifest(conn, _manifest("q", "quality"), "uid-q")
        assert await conn.fetchval("SELECT count(*) FROM runs WHERE uid = 'uid-q'") == 0
        # The skops version 1 is still there for a run that asks for it.
        assert (await storage.find(conn, MODEL_NAME, 1, load=True)).version == 1

        # v3: a skops blob calling os.system, claiming this scikit-learn.
        cmd = f"touch {shlex.quote(str(marker))}"
        await _insert(conn, 3, "skops", _skops_calling(cmd), metadata.version("scikit-learn"))
        await storage.find(conn, MODEL_NAME, 3)  # the metadata alone looks fine
        with pytest.raises(storage.ModelCorrupt, match=rf"\(os\.system\).*{TRAIN}"):
            await storage.find(conn, MODEL_NAME, 3, load=True)

        # v4: a genuine model, from another scikit-learn minor.
        blob, _ = storage.dumps(_fitted())
        await _insert(conn, 4, "skops", blob, "0.24.2")
        with pytest.raises(
            storage.ModelUnusable,
            match=rf"scikit-learn 0\.24\.2 .*{TRAIN}.*set spec\.modelVersion to the new version",
        ):
            await storage.find(conn, MODEL_NAME, 4, load=True)

        # All of them are still listed (metadata only), with what wrote them.
        listed = {m.version: (m.format, m.sklearn_version) for m in await storage.list_models(conn)}
        assert listed[2] == ("pickle", None) and listed[4] == ("skops", "0.24.2")
    assert not marker.exists()
