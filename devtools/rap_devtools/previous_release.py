"""The previous release, for the upgrade tests: which commit it is, and its tree.

    from rap_devtools.previous_release import materialise

    with materialise() as old:          # a temp dir with the v0.1.0 tree
        chart = old / "charts" / "rap-analyzer"

    python -m rap_devtools.previous_release image   # docker build rap-analyzer:0.1.0
                                                     # (`make previous-image`)

The tag names the release; CI clones may not fetch tags, so the commit it points
at (always in main's history) is the fallback. Bump both together when a new
release is tagged: the upgrade tests always start from the release before this
working tree.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TAG = "v0.1.0"
COMMIT = "49c519e5c91343615e35a729d932a342187e5d99"
CHART_VERSION = "0.1.0"
# The previous release's image, built from its own tree by its own build script
# (tests/node upgrades a release running it).
IMAGE = f"rap-analyzer:{CHART_VERSION}"


def _git(*args: str, repo: Path = REPO_ROOT) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=120)


def revision(repo: Path = REPO_ROOT) -> str:
    """The tag when this clone has it (and it is the commit above), else the commit."""
    tagged = _git("rev-parse", "--verify", "--quiet", f"{TAG}^{{commit}}", repo=repo)
    if tagged.returncode == 0 and tagged.stdout.decode().strip() == COMMIT:
        return TAG
    return COMMIT


def extract(dest: Path, repo: Path = REPO_ROOT) -> Path:
    """`git archive` of the previous release unpacked into dest; returns dest."""
    rev = revision(repo)
    out = _git("archive", "--format=tar", rev, repo=repo)
    if out.returncode != 0:
        raise RuntimeError(
            f"git archive {rev} failed ({out.returncode}): {out.stderr.decode().strip()}; "
            f"a shallow clone lacks it: git fetch --unshallow (or fetch {COMMIT})"
        )
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


@contextmanager
def materialise(repo: Path = REPO_ROOT) -> Iterator[Path]:
    """The previous release's tree in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="rap-previous-release-") as tmp:
        yield extract(Path(tmp), repo)


def build_image(image: str = IMAGE, repo: Path = REPO_ROOT) -> None:
    """`docker build` the previous release's image from its tree, with its own
    tools/build-image.sh and Dockerfile (so it is that release's image, not
    this one's with an old tag)."""
    with materialise(repo) as tree:
        subprocess.run(
            ["bash", "tools/build-image.sh"],
            cwd=tree,
            env={**os.environ, "IMAGE": image},
            check=True,
            timeout=1800,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rap_devtools.previous_release")
    parser.add_argument("what", choices=["image", "revision"])
    args = parser.parse_args(argv)
    if args.what == "image":
        build_image()
    else:
        print(revision())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
