"""`make bench`: every benchmark, printed as JSON (copy figures into bench/RESULTS.md)."""

from __future__ import annotations

import json
import sys

from bench import local_run

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 57718
    print(json.dumps({"local_run": local_run.main(n)}, indent=2))
