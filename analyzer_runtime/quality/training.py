"""Train the distilled model: labels from an llm run, features from stored results.

For each target (the LLM's `quality` 1-10 and `complexity` 0-1) three models are
evaluated with the same k folds (shuffled, seeded): scikit-learn's
HistGradientBoostingRegressor (the model kept), a linear baseline (Ridge over
standardized features) and a constant baseline (the training folds' mean). Each is
scored on its out-of-fold predictions: mean absolute error against the LLM's labels
and Spearman's rank correlation (None for the constant, which ranks nothing). The
gradient boosting is then fitted on all labelled tracks and stored.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from analyzer_runtime import protocol
from analyzer_runtime.quality import MODEL_NAME, features, storage

TARGETS = ("quality", "complexity")
# The range each target is clipped to when predicting (the LLM schema's).
TARGET_RANGES = {"quality": (1.0, 10.0), "complexity": (0.0, 1.0)}
MIN_TRACKS = 100
DEFAULT_FOLDS = 5


class TrainingError(ValueError):
    """A one-line reason training cannot start (exit 2)."""


@dataclass
class Labels:
    run: protocol.Run
    ids: list[int]
    targets: dict[str, np.ndarray]


def gradient_boosting() -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
        l2_regularization=1.0, early_stopping=False, random_state=0,
    )  # fmt: skip


def linear() -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(), StandardScaler(), Ridge(alpha=1.0))


def constant() -> Any:
    from sklearn.dummy import DummyRegressor

    return DummyRegressor(strategy="mean")


CANDIDATES = {"gradient_boosting": gradient_boosting, "linear": linear, "constant": constant}


async def read_labels(conn: asyncpg.Connection, run_ref: str) -> Labels:
    """The LLM labels of run `run_ref` (name or uid): its tracks with an llm result."""
    run = await protocol.find_run(conn, run_ref) or await protocol.find_run_by_name(conn, run_ref)
    if run is None:
        raise TrainingError(
            f"no run named {run_ref!r} in this database (rap-analyzer status lists the runs)"
        )
    if run.kind != "AnalysisRun" or run.analyzer_type != "llm":
        what = run.analyzer_type or run.kind
        raise TrainingError(
            f"run {run.name!r} ran the {what} analyzer, not llm: train from the labels of an"
            " AnalysisRun with analyzer: llm"
        )
    if run.compacted_at is not None:
        raise TrainingError(
            f"run {run.name!r} was compacted by `rap-analyzer db gc` on"
            f" {run.compacted_at:%Y-%m-%d}: its list of labelled tracks is gone (its results"
            " are kept). Train from a newer llm run, or run gc with a longer --older-than"
        )
    rows = await conn.fetch(
        """SELECT r.track_id, (r.analysis_data->>'quality')::float8 AS quality,
                  r.complexity_score::float8 AS complexity
             FROM run_items i
             JOIN analysis_results r
               ON r.track_id = i.item_id AND r.analyzer_type = 'llm' AND r.model_version = $2
            WHERE i.run_id = $1 AND i.state = 'done'
              AND r.analysis_data ? 'quality' AND r.complexity_score IS NOT NULL
            ORDER BY r.track_id""",
        run.id,
        run.model_version,
    )
    if len(rows) < MIN_TRACKS:
        raise TrainingError(
            f"run {run.name!r} has {len(rows)} tracks labelled by the LLM; at least {MIN_TRACKS}"
            " are needed to train and evaluate a model (label more with an llm AnalysisRun)"
        )
    return Labels(
        run=run,
        ids=[r["track_id"] for r in rows],
        targets={t: np.asarray([r[t] for r in rows], dtype=np.float64) for t in TARGETS},
    )


def _missing_message(run_name: str, missing: dict[int, str], total: int) -> str:
    counts: dict[str, int] = {}
    for what in missing.values():
        for analyzer in what.split(" and "):
            counts[analyzer] = counts.get(analyzer, 0) + 1
    first = next(a for a in ("algorithmic", "emotion", "embedding") if a in counts)
    lacks = ", ".join(f"{n} have no {a} result" for a, n in counts.items())
    return (
        f"{len(missing)} of the {total} tracks labelled by run {run_name!r} lack features"
        f" ({lacks}): apply an `{first}` AnalysisRun with selection.onlyMissing first"
        " (its default), then train again"
    )


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    rho = float(spearmanr(a, b).statistic)
    return None if math.isnan(rho) else round(rho, 4)


def cross_validate(x: np.ndarray, y: np.ndarray, folds: int, target: str) -> dict[str, Any]:
    """Out-of-fold MAE and Spearman of every candidate on the same folds."""
    from sklearn.model_selection import KFold

    lo, hi = TARGET_RANGES[target]
    out: dict[str, Any] = {}
    splits = list(KFold(n_splits=folds, shuffle=True, random_state=0).split(x))
    for name, make in CANDIDATES.items():
        pred = np.empty_like(y)
        for train, test in splits:
            pred[test] = make().fit(x[train], y[train]).predict(x[test])
        pred = np.clip(pred, lo, hi)
        out[name] = {
            "mae": round(float(np.mean(np.abs(pred - y))), 4),
            # A constant ranks nothing (its folds' means differ only by chance).
            "spearman": None if name == "constant" else spearman(pred, y),
        }
    return out


async def train(
    conn: asyncpg.Connection, run_ref: str, *, folds: int = DEFAULT_FOLDS, store: bool = True
) -> tuple[storage.StoredModel | None, dict[str, Any]]:
    """Evaluate, fit and (with `store`) save a new version of the quality model."""
    if folds < 2:
        raise TrainingError(f"--folds must be at least 2, got {folds}")
    labels = await read_labels(conn, run_ref)
    with_embedding = await features.all_have_embeddings(conn, labels.ids)
    rows = await features.read_features(conn, labels.ids, with_embedding=with_embedding)
    if rows.missing:
        raise TrainingError(_missing_message(labels.run.name, rows.missing, len(labels.ids)))
    names = features.BASE_FEATURES + (features.embedding_features() if with_embedding else [])
    t0 = time.perf_counter()
    x = rows.matrix
    metrics: dict[str, Any] = {
        "folds": folds,
        "tracks": len(labels.ids),
        "features": len(names),
        "embedding": with_embedding,
        "model": "gradient_boosting",
        "targets": {},
    }
    estimators: dict[str, Any] = {}
    for target in TARGETS:
        y = labels.targets[target]
        scores = cross_validate(x, y, folds, target)
        scores["label_mean"] = round(float(np.mean(y)), 4)
        scores["label_std"] = round(float(np.std(y)), 4)
        metrics["targets"][target] = scores
        estimators[target] = gradient_boosting().fit(x, y)
    metrics["train_seconds"] = round(time.perf_counter() - t0, 2)
    json.dumps(metrics)  # JSON-safe before it is stored
    if not store:
        return None, metrics
    model = await storage.save(
        conn,
        name=MODEL_NAME,
        features=names,
        estimators=estimators,
        metrics=metrics,
        training_run=labels.run.name,
        training_tracks=len(labels.ids),
    )
    return model, metrics


def predict(model: storage.StoredModel, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each target's predictions for the rows of `x`, clipped to the label range."""
    assert model.estimators is not None
    out = {}
    for target, est in model.estimators.items():
        lo, hi = TARGET_RANGES.get(target, (-np.inf, np.inf))
        out[target] = np.clip(est.predict(x), lo, hi)
    return out


def render_metrics(model: storage.StoredModel | None, m: dict[str, Any]) -> str:
    """The table `model train` prints."""
    head = (
        f"trained {model.name} model version {model.version} from run {model.training_run!r}"
        if model
        else "evaluated (not stored)"
    )
    lines = [
        head,
        f"{m['tracks']} labelled tracks, {m['features']} features"
        f" ({'with' if m['embedding'] else 'without'} embeddings), {m['folds']}-fold CV",
        f"{'target':<11} {'model':<18} {'MAE':>7} {'Spearman':>9}",
    ]
    for target, scores in m["targets"].items():
        for name in CANDIDATES:
            s = scores[name]
            rho = "-" if s["spearman"] is None else f"{s['spearman']:.3f}"
            lines.append(f"{target:<11} {name:<18} {s['mae']:>7.3f} {rho:>9}")
    return "\n".join(lines)
