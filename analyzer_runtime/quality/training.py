"""Train the distilled model: labels from an llm run (or from an analyzer's stored
results, e.g. those adopted from the original platform: `--from-analyzer`), features
from stored results.

For each target (the LLM's `quality` 1-10 and `complexity` 0-1) three models are
evaluated with the same k folds (shuffled, seeded): scikit-learn's
HistGradientBoostingRegressor (the model kept), a linear baseline (Ridge over
standardized features) and a constant baseline (the training folds' mean). Each is
scored on its out-of-fold predictions: mean absolute error against the LLM's labels
and Spearman's rank correlation (None for the constant, which ranks nothing). The
gradient boosting is then fitted on all labelled tracks and stored.

From an analyzer (`read_analyzer_labels`), the labels are read through
legacy_labels' mapping (a legacy Qwen answer's quality_metrics.overall_quality, its
technical_analysis.complexity_level ...): `quality` must be there for at least
MIN_TRACKS tracks; `complexity` is learned when at least MIN_TRACKS tracks have it,
else the model has the quality target only (the metrics say why).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np

from analyzer_runtime import legacy_labels
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.quality import MODEL_NAME, agreement, features, storage

TARGETS = ("quality", "complexity")
# The range each target is clipped to when predicting (the LLM schema's).
TARGET_RANGES = {"quality": (1.0, 10.0), "complexity": (0.0, 1.0)}
MIN_TRACKS = 100
DEFAULT_FOLDS = 5


class TrainingError(ValueError):
    """A one-line reason training cannot start (exit 2)."""


@dataclass
class Labels:
    source: str  # for messages: "run 'labels'", "analyzer 'qwen-3-4b-fp8'"
    trained_from: str  # models.training_run: the run's name, or "analyzer:<type>[@<version>]"
    ids: list[int]
    # target -> one label per track of `ids`; NaN where the track has none (only from
    # an analyzer, and only for a target other than quality)
    targets: dict[str, np.ndarray]
    about: dict[str, Any]  # what the labels are (stored in the metrics)
    skipped: dict[str, str] = field(default_factory=dict)  # target -> why not learned
    run: shard_ledger.Run | None = None
    # The LLM's sentiment label per track of `ids` (None where it has none or one
    # outside agreement.LABELS): the cascade's sentiment head learns it.
    sentiment: list[str | None] | None = None


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
    run = await shard_ledger.find_run(conn, run_ref) or await shard_ledger.find_run_by_name(
        conn, run_ref
    )
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
                  r.complexity_score::float8 AS complexity, r.sentiment
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
        source=f"run {run.name!r}",
        trained_from=run.name,
        ids=[r["track_id"] for r in rows],
        targets={t: np.asarray([r[t] for r in rows], dtype=np.float64) for t in TARGETS},
        about={"from": "run", "run": run.name, "uid": run.uid},
        run=run,
        sentiment=[r["sentiment"] if r["sentiment"] in agreement.LABELS else None for r in rows],
    )


async def read_analyzer_labels(
    conn: asyncpg.Connection, analyzer: str, version: str | None = None
) -> Labels:
    """The labels of an analyzer's stored results (every version - the newest result
    per track - or one): e.g. the adopted `qwen-3-4b-fp8`, read through
    legacy_labels' mapping. Tracks with empty lyrics are left out (no analyzer gives
    them features)."""
    versions = {
        r["model_version"]: r["n"]
        for r in await conn.fetch(
            """SELECT model_version, count(*) AS n FROM analysis_results
                WHERE analyzer_type = $1 GROUP BY 1 ORDER BY 1""",
            analyzer,
        )
    }
    if not versions:
        names = [
            r[0]
            for r in await conn.fetch(
                "SELECT DISTINCT analyzer_type FROM analysis_results ORDER BY 1"
            )
        ]
        raise TrainingError(
            f"no results of analyzer {analyzer!r} in this database; analyzers with results:"
            f" {', '.join(names) or 'none'}"
        )
    if version is not None and version not in versions:
        raise TrainingError(
            f"analyzer {analyzer!r} has no results of version {version!r}; its versions:"
            f" {', '.join(versions)}"
        )
    rows = await conn.fetch(
        f"""SELECT r.track_id, {legacy_labels.quality_sql("r")} AS quality,
                   {legacy_labels.complexity_sql("r")} AS complexity,
                   {legacy_labels.sentiment_sql("r")} AS sentiment
              FROM (SELECT DISTINCT ON (track_id) * FROM analysis_results
                     WHERE analyzer_type = $1 AND ($2::text IS NULL OR model_version = $2)
                     ORDER BY track_id, created_at DESC, id DESC) r
              JOIN tracks t ON t.id = r.track_id AND t.lyrics ~ '\\S'
             ORDER BY r.track_id""",
        analyzer,
        version,
    )
    source = f"analyzer {analyzer!r}" + (f" version {version!r}" if version else "")
    labelled = [r for r in rows if r["quality"] is not None]
    if len(labelled) < MIN_TRACKS:
        raise TrainingError(
            f"{source} has {len(rows)} tracks with lyrics and results, {len(labelled)} of"
            f" them with a quality label ({legacy_labels.LABEL_SOURCES['quality']}); at"
            f" least {MIN_TRACKS} are needed to train and evaluate a model"
        )
    complexity = np.asarray(
        [np.nan if r["complexity"] is None else r["complexity"] for r in labelled],
        dtype=np.float64,
    )
    skipped = {}
    n_complexity = int(np.count_nonzero(~np.isnan(complexity)))
    if n_complexity < MIN_TRACKS:
        skipped["complexity"] = (
            f"{n_complexity} of the {len(labelled)} tracks have a complexity label"
            f" ({legacy_labels.LABEL_SOURCES['complexity']}); at least {MIN_TRACKS} are needed"
        )
    targets = {"quality": np.asarray([r["quality"] for r in labelled], dtype=np.float64)}
    if "complexity" not in skipped:
        targets["complexity"] = complexity
    return Labels(
        source=source,
        trained_from=f"analyzer:{analyzer}" + (f"@{version}" if version else ""),
        ids=[r["track_id"] for r in labelled],
        targets=targets,
        about={
            "from": "analyzer",
            "analyzer_type": analyzer,
            "model_version": version,
            "legacy": analyzer in legacy_labels.LEGACY_ANALYZERS,
            "mapping": legacy_labels.LABEL_SOURCES,
        },
        skipped=skipped,
        sentiment=[
            r["sentiment"] if r["sentiment"] in agreement.LABELS else None for r in labelled
        ],
    )


def _missing_message(source: str, missing: dict[int, str], total: int) -> str:
    counts: dict[str, int] = {}
    for what in missing.values():
        for analyzer in what.split(" and "):
            counts[analyzer] = counts.get(analyzer, 0) + 1
    first = next(a for a in ("algorithmic", "emotion", "embedding") if a in counts)
    lacks = ", ".join(f"{n} have no {a} result" for a, n in counts.items())
    return (
        f"{len(missing)} of the {total} tracks labelled by {source} lack features"
        f" ({lacks}): apply an `{first}` AnalysisRun with selection.onlyMissing first"
        " (its default), then train again"
    )


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    rho = float(spearmanr(a, b).statistic)
    return None if math.isnan(rho) else round(rho, 4)


def kfold(x: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold

    return list(KFold(n_splits=folds, shuffle=True, random_state=0).split(x))


def cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    folds: int,
    target: str,
    oof: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Out-of-fold MAE and Spearman of every candidate on the same folds; each
    candidate's out-of-fold predictions go into `oof` when given."""
    lo, hi = TARGET_RANGES[target]
    out: dict[str, Any] = {}
    splits = kfold(x, folds)
    for name, make in CANDIDATES.items():
        pred = np.empty_like(y)
        for train, test in splits:
            pred[test] = make().fit(x[train], y[train]).predict(x[test])
        pred = np.clip(pred, lo, hi)
        if oof is not None:
            oof[name] = pred
        out[name] = {
            "mae": round(float(np.mean(np.abs(pred - y))), 4),
            # A constant ranks nothing (its folds' means differ only by chance).
            "spearman": None if name == "constant" else spearman(pred, y),
        }
    return out


async def train(
    conn: asyncpg.Connection,
    run_ref: str | None = None,
    *,
    from_analyzer: str | None = None,
    analyzer_version: str | None = None,
    folds: int = DEFAULT_FOLDS,
    store: bool = True,
) -> tuple[storage.StoredModel | None, dict[str, Any]]:
    """Evaluate, fit and (with `store`) save a new version of the quality model, from
    the labels of llm run `run_ref` or of analyzer `from_analyzer` (one of the two)."""
    if folds < 2:
        raise TrainingError(f"--folds must be at least 2, got {folds}")
    if (run_ref is None) == (from_analyzer is None):
        raise TrainingError("train from an llm run (--from-run) or an analyzer (--from-analyzer)")
    if from_analyzer is not None:
        labels = await read_analyzer_labels(conn, from_analyzer, analyzer_version)
    else:
        assert run_ref is not None
        labels = await read_labels(conn, run_ref)
    with_embedding = await features.all_have_embeddings(conn, labels.ids)
    rows = await features.read_features(conn, labels.ids, with_embedding=with_embedding)
    if rows.missing:
        raise TrainingError(_missing_message(labels.source, rows.missing, len(labels.ids)))
    names = features.BASE_FEATURES + (features.embedding_features() if with_embedding else [])
    t0 = time.perf_counter()
    x = rows.matrix
    metrics: dict[str, Any] = {
        "folds": folds,
        "tracks": len(labels.ids),
        "features": len(names),
        "embedding": with_embedding,
        "model": "gradient_boosting",
        "labels": labels.about,
        "targets": {},
    }
    if labels.skipped:
        metrics["skipped_targets"] = labels.skipped
    estimators: dict[str, Any] = {}
    quality_oof: dict[str, np.ndarray] = {}
    for target in TARGETS:
        if target not in labels.targets:
            continue
        y = labels.targets[target]
        has = ~np.isnan(y)  # all True from a run
        xt, y = x[has], y[has]
        oof: dict[str, np.ndarray] = {}
        scores = cross_validate(xt, y, folds, target, oof)
        if target == "quality":  # every labelled track has a quality label
            quality_oof = oof
        scores["tracks"] = len(y)
        scores["label_mean"] = round(float(np.mean(y)), 4)
        scores["label_std"] = round(float(np.std(y)), 4)
        metrics["targets"][target] = scores
        estimators[target] = gradient_boosting().fit(xt, y)
    head = _sentiment_head(x, labels, quality_oof.get("gradient_boosting"), folds)
    if isinstance(head, str):
        metrics["skipped_targets"] = {**metrics.get("skipped_targets", {}), "sentiment": head}
    else:
        estimators[agreement.SENTIMENT], calibration, metrics["sentiment"] = head
        estimators[agreement.CALIBRATION] = calibration.as_arrays()
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
        training_run=labels.trained_from,
        training_tracks=len(labels.ids),
    )
    return model, metrics


def _sentiment_head(
    x: np.ndarray, labels: Labels, quality_oof: np.ndarray | None, folds: int
) -> tuple[Any, agreement.Calibration, dict[str, Any]] | str:
    """The sentiment classifier, the agreement calibration and their metrics, or why
    there is none (the model then predicts quality and complexity only, as before)."""
    sentiment = labels.sentiment or []
    has = np.asarray([s is not None for s in sentiment], dtype=bool)
    if quality_oof is None or len(sentiment) != len(labels.ids) or has.sum() < MIN_TRACKS:
        return (
            f"{int(has.sum())} of the {len(labels.ids)} tracks have a sentiment label"
            f" ({', '.join(agreement.LABELS)}); at least {MIN_TRACKS} are needed"
        )
    y = np.asarray([s for s in sentiment if s is not None], dtype=object).astype(str)
    if len(set(y)) < 2:
        return f"every labelled track has the sentiment {y[0]!r}: nothing to learn"
    xs = x[has]
    clf, top, correct, metrics = agreement.fit_sentiment(xs, y, kfold(xs, folds))
    quality = labels.targets["quality"]
    qual_ok = np.abs(quality_oof - quality) <= agreement.QUALITY_TOLERANCE
    sx, sy = agreement.sentiment_table(top, correct)
    cal = agreement.Calibration(sx, sy, agreement.quality_table(quality_oof, quality))
    metrics["quality_within_1"] = round(float(qual_ok.mean()), 4)
    metrics["cascade_curve"] = agreement.coverage_curve(
        cal.p_sentiment(top), correct, cal.p_quality(quality_oof)[has], qual_ok[has]
    )
    return clf, cal, metrics


def predict(model: storage.StoredModel, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each regression target's predictions for the rows of `x`, clipped to the label
    range (the sentiment head is `predict_agreement`'s)."""
    assert model.estimators is not None
    out = {}
    for target, est in model.estimators.items():
        if target in TARGETS:
            lo, hi = TARGET_RANGES[target]
            out[target] = np.clip(est.predict(x), lo, hi)
    return out


def predict_agreement(
    model: storage.StoredModel, x: np.ndarray, quality: np.ndarray
) -> agreement.Prediction | None:
    """The sentiment head's labels and the chance the LLM agrees, or None for a model
    trained without the head (before issue 25, or from labels without sentiment)."""
    assert model.estimators is not None
    clf = model.estimators.get(agreement.SENTIMENT)
    cal = model.estimators.get(agreement.CALIBRATION)
    if clf is None or cal is None:
        return None
    return agreement.predict(clf, agreement.Calibration.from_arrays(cal), x, quality)


def trained_from(model: storage.StoredModel) -> str:
    """What a model learned from, in words: "run 'labels'", "analyzer 'qwen-3-4b-fp8'"."""
    ref = model.training_run or ""
    if ref.startswith("analyzer:"):
        return f"analyzer {ref.removeprefix('analyzer:')!r}"
    return f"run {ref!r}"


def render_metrics(model: storage.StoredModel | None, m: dict[str, Any]) -> str:
    """The table `model train` prints."""
    head = (
        f"trained {model.name} model version {model.version} from {trained_from(model)}"
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
    if (sm := m.get("sentiment")) is not None:
        lines.append(
            f"{'sentiment':<11} {'classifier':<18} accuracy {sm['accuracy']:.3f}"
            f" (majority {sm['majority_baseline']:.3f}); quality within 1:"
            f" {sm['quality_within_1']:.3f}"
        )
        lines.append("cascade (out of fold): minConfidence -> kept, agreement of kept")
        for c in sm["cascade_curve"][::2]:
            if c["sentiment_agreement_kept"] is None:
                lines.append(f"  {c['threshold']:.1f} -> 0%")
                continue
            lines.append(
                f"  {c['threshold']:.1f} -> {c['kept']:.0%} kept, sentiment"
                f" {c['sentiment_agreement_kept']:.3f}, quality {c['quality_agreement_kept']:.3f}"
            )
    for target, why in (m.get("skipped_targets") or {}).items():
        lines.append(f"{target:<11} not learned: {why}")
    return "\n".join(lines)
