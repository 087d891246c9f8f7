"""Pure analyzer rate: tracks/s of one analyzer in one process, no database.

Tracks are generated first (not timed); the timed loop is exactly what a
shard does per batch minus the database: `LocalAnalyzer.analyze_sync` per
track. One untimed warm-up track loads the lexicons and dictionaries.

    python -m bench.analyzer_rate [N] [ANALYZER]
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from analyzer_runtime.analyzers.base import LocalAnalyzer, TrackInput
from analyzer_runtime.analyzers.registry import create
from analyzer_runtime.corpus.synthetic import generate_tracks


def measure(n: int, analyzer: str = "algorithmic", seed: int = 42) -> dict[str, Any]:
    """Analyze n synthetic tracks and return the rate and outcome counts."""
    inputs = [
        TrackInput(id=t.genius_id, title=t.title, artist=t.artist, lyrics=t.lyrics)
        for t in generate_tracks(n, seed=seed)
    ]
    words = sum(len((t.lyrics or "").split()) for t in inputs)
    instance = create(analyzer)
    if not isinstance(instance, LocalAnalyzer):
        raise TypeError(f"{analyzer} is not a local (CPU) analyzer; its rate needs a service")
    instance.analyze_sync(inputs[0])  # warm-up: lexicons and CMU load here
    counts = {"done": 0, "skipped": 0, "failed": 0}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for track in inputs:
        counts[instance.analyze_sync(track).status] += 1
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return {
        "analyzer": analyzer,
        "version": instance.version,
        "tracks": n,
        "mean_words": round(words / n, 1) if n else 0,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "tracks_per_s": round(n / wall, 1) if wall else None,
        "tracks_per_cpu_s": round(n / cpu, 1) if cpu else None,
        **counts,
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    name = sys.argv[2] if len(sys.argv) > 2 else "algorithmic"
    print(json.dumps(measure(count, name), indent=2))
