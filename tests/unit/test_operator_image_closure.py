"""The operator image (Dockerfile target `operator`) ships rap_operator,
analyzer_runtime.contract and analyzer_runtime.ledger and the packages of
requirements/operator.txt, nothing else. This is the same check without Docker:
in a fresh interpreter whose imports are limited to what the image holds (the
standard library, those three packages, and the modules of the distributions
operator.txt pins), every rap_operator module imports. An import the operator
only tries (kopf's optional sync kubernetes client) fails there as in the image;
a required one (NumPy through pgvector, openai, a runtime module) fails the test.
tests/image checks the built image itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")

# A subprocess: this test process has imported the runtime already. argv[1]: the
# distributions of requirements/operator.txt.
PROBE = """
import importlib, importlib.abc, importlib.metadata as md, json, pkgutil, re, sys

pinned = set(json.loads(sys.argv[1]))
canon = lambda n: re.sub(r"[-_.]+", "-", n).lower()
tops = {t for t, ds in md.packages_distributions().items() if any(canon(d) in pinned for d in ds)}
allowed = set(sys.stdlib_module_names) | tops | {"rap_operator"}
shipped = ("analyzer_runtime", "analyzer_runtime.contract", "analyzer_runtime.ledger")
refused = []


def permitted(name):
    top = name.split(".")[0]
    if top == "analyzer_runtime":
        return name in shipped or any(name.startswith(p + ".") for p in shipped[1:])
    return top in allowed or top.startswith("_sysconfigdata")


# In front of every finder: a module the image lacks is not found (None, so that
# importlib.util.find_spec says so too, as an optional import expects).
class OperatorImage(importlib.abc.MetaPathFinder):

    def __init__(self, finders):
        self.finders = finders

    def find_spec(self, name, path, target=None):
        if not permitted(name):
            refused.append(name)
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                return spec
        return None


sys.meta_path[:] = [OperatorImage(list(sys.meta_path))]
import rap_operator
names = [m.name for m in pkgutil.walk_packages(rap_operator.__path__, "rap_operator.")]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failed[name] = str(exc)
print(json.dumps({"modules": names, "failed": failed, "refused": sorted(set(refused))}))
"""


def _operator_lock() -> set[str]:
    lines = (ROOT / "requirements" / "operator.txt").read_text().splitlines()
    return {canonicalize_name(m[1]) for line in lines if (m := PIN.match(line))}


def test_every_operator_module_imports_with_only_what_its_image_ships() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(sorted(_operator_lock()))],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert "rap_operator.handlers" in found["modules"]  # it walked the operator
    assert found["failed"] == {}, f"refused imports: {found['refused']}"
