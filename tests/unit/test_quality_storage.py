"""The quality model's storage format (issue 23): skops, never pickle. A trained model
round-trips; a blob naming an untrusted type (here one that would call os.system), a
pickle, bytes that are not a skops file or a skops file holding something other than
the estimators are refused with the retrain command, and none of them runs code: the
marker file each payload would write stays absent. The payloads are proven live by
loading them the unsafe way first."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shlex
import zipfile
import zoneinfo
from pathlib import Path

import numpy as np
import pytest
import skops.io

from analyzer_runtime.quality import storage, training

TRAIN = storage.train_command()


def _fitted() -> dict[str, object]:
    rng = np.random.default_rng(0)
    x = rng.random((120, 4))
    return {
        "quality": training.gradient_boosting().set_params(max_iter=10).fit(x, x[:, 0] * 9 + 1),
        "complexity": training.gradient_boosting().set_params(max_iter=10).fit(x, x[:, 1]),
    }


def _skops_calling(cmd: str) -> bytes:
    """A skops file whose one value is built by calling os.system(cmd): skops's
    ConstructorFromReduceNode (meant for ZoneInfo(key)) with the callable swapped."""
    source = zipfile.ZipFile(io.BytesIO(skops.io.dumps({"quality": zoneinfo.ZoneInfo("UTC")})))
    schema = json.loads(source.read("schema.json"))
    node = schema["content"]["quality"]
    assert node["__loader__"] == "ConstructorFromReduceNode"
    node["__module__"], node["__class__"] = "os", "system"
    node["content"]["content"][0]["content"] = json.dumps(cmd)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in source.namelist():
            z.writestr(name, json.dumps(schema) if name == "schema.json" else source.read(name))
    return out.getvalue()


class _WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_a_trained_model_round_trips_and_needs_only_the_trusted_types() -> None:
    estimators = _fitted()
    blob, digest = storage.dumps(estimators)
    assert blob[:2] == b"PK"  # a skops zip, not a pickle
    assert set(skops.io.get_untrusted_types(data=blob)) <= set(storage.TRUSTED)
    loaded = storage.loads(blob, digest, ["quality", "complexity"])
    x = np.random.default_rng(1).random((5, 4))
    for target, est in estimators.items():
        # `estimators` holds them as object: scikit-learn has no type stubs.
        np.testing.assert_array_equal(loaded[target].predict(x), est.predict(x))  # type: ignore[attr-defined]


def test_changed_bytes_are_refused_before_parsing() -> None:
    blob, digest = storage.dumps(_fitted())
    with pytest.raises(storage.ModelCorrupt, match=f"sha256 .*{TRAIN}"):
        storage.loads(blob[:-1] + bytes([blob[-1] ^ 1]), digest)


def test_a_skops_file_calling_os_system_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    proof, marker = tmp_path / "proof", tmp_path / "marker"
    # Live: trusting os.system, skops itself would run it.
    skops.io.loads(_skops_calling(f"touch {shlex.quote(str(proof))}"), trusted=["os.system"])
    assert proof.exists()

    blob = _skops_calling(f"touch {shlex.quote(str(marker))}")
    digest = hashlib.sha256(blob).hexdigest()
    with pytest.raises(storage.ModelCorrupt, match=rf"not trusted \(os\.system\).*{TRAIN}"):
        storage.loads(blob, digest)
    assert not marker.exists()


def test_pickle_bytes_stored_as_skops_are_not_unpickled(tmp_path: Path) -> None:
    proof, marker = tmp_path / "proof", tmp_path / "marker"
    pickle.loads(pickle.dumps(_WritesMarker(proof)))  # live: unpickling runs it
    assert proof.exists()

    blob = pickle.dumps(_WritesMarker(marker))
    with pytest.raises(storage.ModelCorrupt, match=f"not a readable skops file.*{TRAIN}"):
        storage.loads(blob, hashlib.sha256(blob).hexdigest())
    assert not marker.exists()


def test_a_skops_file_of_trusted_types_that_is_not_the_model_is_refused() -> None:
    from sklearn.linear_model import Ridge

    blob, digest = storage.dumps({"quality": Ridge()})  # safe to load, but not ours
    with pytest.raises(storage.ModelCorrupt, match=r"holds \{'quality': 'Ridge'\}"):
        storage.loads(blob, digest, ["quality"])
    blob, digest = storage.dumps(_fitted())
    with pytest.raises(storage.ModelCorrupt, match="per target"):
        storage.loads(blob, digest, ["quality"])  # the row's targets disagree


def test_pickle_rows_other_formats_and_other_scikit_learn_minors_are_unusable() -> None:
    with pytest.raises(storage.ModelUnusable, match=f"stored as a pickle.*{TRAIN}"):
        storage.check_usable("quality", 3, "pickle", None)
    with pytest.raises(storage.ModelUnusable, match=f"'onnx'.*{TRAIN}"):
        storage.check_usable("quality", 3, "onnx", "1.9.1")
    with pytest.raises(storage.ModelUnusable, match=f"scikit-learn 1.8.2 .* has 1.9.1.*{TRAIN}"):
        storage.check_usable("quality", 3, "skops", "1.8.2", running="1.9.1")
    with pytest.raises(storage.ModelUnusable, match=r"\(unrecorded\)"):
        storage.check_usable("quality", 3, "skops", None, running="1.9.1")
    storage.check_usable("quality", 3, "skops", "1.9.0", running="1.9.1")  # a patch apart
    storage.check_usable("quality", 3, "skops", storage.sklearn_version())
    # The operator treats an unusable model as a missing one (the run waits for it).
    assert issubclass(storage.ModelCorrupt, storage.ModelUnusable)
    assert issubclass(storage.ModelUnusable, storage.ModelNotFound)
