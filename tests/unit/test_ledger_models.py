"""The operator checks a quality model against the worker image's scikit-learn (its own
image has none): ledger/models.py's WORKER_SKLEARN_VERSION must be the one the worker
image installs."""

from __future__ import annotations

import re

from analyzer_runtime.ledger import models
from tests.import_graph import ROOT


def test_the_worker_sklearn_version_is_the_images() -> None:
    lock = (ROOT / "requirements" / "image.txt").read_text()
    pinned = re.search(r"^scikit-learn==([\w.]+)", lock, re.M)
    assert pinned is not None
    assert models.WORKER_SKLEARN_VERSION == pinned[1]
