"""The quality model's estimate of whether the LLM would agree with it (the cascade's
confidence, issue 25): a sentiment head and two calibration tables.

- Sentiment: a HistGradientBoostingClassifier learns the LLM's sentiment label
  (positive / negative / neutral / mixed) from the same features as the regressors.
  A boosted classifier's own top probability is over-confident (measured: at 0.9 it
  was right 88% of the time), so it is calibrated the standard "top-label" way: out of
  fold (the k folds of training), an isotonic regression maps the top probability to
  how often that top label WAS the LLM's. `p_sentiment` is that calibrated chance.
- Quality: "agrees" means within +-1 of the LLM's 1-10 score. Out of fold, the share of
  tracks whose prediction was within 1, per predicted score (rounded, 1..10); a score
  with fewer than MIN_BIN tracks uses the share over all tracks. `p_quality` is that
  share for the track's predicted score.
- A track's confidence is min(p_sentiment, p_quality): every label the cheap analyzer
  gives agrees with the LLM with at least that estimated chance.

Everything is arrays (`Calibration.as_arrays`), stored with the estimators in the same
skops file, so the sha256 and the trusted-types check cover them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analyzer_runtime.ledger.models import SENTIMENT as SENTIMENT

CALIBRATION = "agreement"
LABELS = ("positive", "negative", "neutral", "mixed")
QUALITY_TOLERANCE = 1.0
MIN_BIN = 30
CURVE_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
# The calibration's isotonic points kept at most (a lookup table, not a model).
MAX_POINTS = 256


def classifier() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
        l2_regularization=1.0, early_stopping=False, random_state=0,
    )  # fmt: skip


@dataclass(frozen=True)
class Calibration:
    sentiment_x: np.ndarray  # top probability (increasing) ...
    sentiment_y: np.ndarray  # ... -> chance the top label is the LLM's
    quality_rate: np.ndarray  # index s-1: share within QUALITY_TOLERANCE for predicted s

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {
            "sentiment_x": self.sentiment_x,
            "sentiment_y": self.sentiment_y,
            "quality_rate": self.quality_rate,
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> Calibration:
        return cls(
            np.asarray(d["sentiment_x"], dtype=np.float64),
            np.asarray(d["sentiment_y"], dtype=np.float64),
            np.asarray(d["quality_rate"], dtype=np.float64),
        )

    def p_sentiment(self, top: np.ndarray) -> np.ndarray:
        # np.interp clips outside the table: IsotonicRegression(out_of_bounds="clip").
        return np.interp(top, self.sentiment_x, self.sentiment_y)

    def p_quality(self, quality: np.ndarray) -> np.ndarray:
        idx = np.clip(np.rint(quality).astype(int), 1, 10) - 1
        return self.quality_rate[idx]


def is_calibration(value: Any) -> bool:
    """Whether a stored value has Calibration's shape (storage's type check)."""
    return (
        isinstance(value, dict)
        and set(value) == {"sentiment_x", "sentiment_y", "quality_rate"}
        and all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in value.values())
        and value["quality_rate"].shape == (10,)
        and value["sentiment_x"].shape == value["sentiment_y"].shape
        and 0 < value["sentiment_x"].size <= MAX_POINTS
    )


def sentiment_table(top: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The isotonic map top probability -> P(correct), as (x, y) points."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(top, correct.astype(np.float64))
    x, y = iso.X_thresholds_, iso.y_thresholds_
    if x.size > MAX_POINTS:
        keep = np.linspace(0, x.size - 1, MAX_POINTS).round().astype(int)
        x, y = x[keep], y[keep]
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def quality_table(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per predicted score 1..10: out-of-fold share within QUALITY_TOLERANCE."""
    ok = np.abs(pred - label) <= QUALITY_TOLERANCE
    overall = float(ok.mean()) if ok.size else 0.0
    bins = np.clip(np.rint(pred).astype(int), 1, 10)
    rate = np.full(10, overall, dtype=np.float64)
    for s in range(1, 11):
        mask = bins == s
        if mask.sum() >= MIN_BIN:
            rate[s - 1] = float(ok[mask].mean())
    return rate


def fit_sentiment(
    x: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """(the classifier fitted on all rows, out-of-fold top probabilities, out-of-fold
    correctness, metrics)."""
    top = np.empty(len(y))
    correct = np.zeros(len(y), dtype=bool)
    for train, test in splits:
        clf = classifier().fit(x[train], y[train])
        proba = clf.predict_proba(x[test])
        top[test] = proba.max(axis=1)
        correct[test] = clf.classes_[proba.argmax(axis=1)] == y[test]
    labels, counts = np.unique(y, return_counts=True)
    metrics = {
        "tracks": len(y),
        "labels": {str(k): int(v) for k, v in zip(labels, counts, strict=True)},
        "accuracy": round(float(correct.mean()), 4),
        "majority_baseline": round(float(counts.max() / counts.sum()), 4),
    }
    return classifier().fit(x, y), top, correct, metrics


def coverage_curve(
    p_sent: np.ndarray, sent_ok: np.ndarray, p_qual: np.ndarray, qual_ok: np.ndarray
) -> list[dict[str, float | None]]:
    """Out of fold, per threshold: the share of tracks the cascade would keep and how
    often its kept labels agree with the LLM's (what `model train` prints)."""
    conf = np.minimum(p_sent, p_qual)
    out = []
    for t in CURVE_THRESHOLDS:
        kept = conf >= t
        n = int(kept.sum())
        out.append(
            {
                "threshold": t,
                "kept": round(n / len(conf), 4) if len(conf) else 0.0,
                "sentiment_agreement_kept": round(float(sent_ok[kept].mean()), 4) if n else None,
                "quality_agreement_kept": round(float(qual_ok[kept].mean()), 4) if n else None,
            }
        )
    return out


@dataclass(frozen=True)
class Prediction:
    sentiment: np.ndarray  # labels
    p_sentiment: np.ndarray
    p_quality: np.ndarray

    @property
    def confidence(self) -> np.ndarray:
        return np.minimum(self.p_sentiment, self.p_quality)


def predict(classifier_: Any, cal: Calibration, x: np.ndarray, quality: np.ndarray) -> Prediction:
    proba = classifier_.predict_proba(x)
    labels = classifier_.classes_[proba.argmax(axis=1)]
    return Prediction(labels, cal.p_sentiment(proba.max(axis=1)), cal.p_quality(quality))


def kept_share(curve: list[dict[str, Any]], threshold: float) -> float | None:
    """The out-of-fold share kept at `threshold`, interpolated along the stored curve."""
    if not curve:
        return None
    xs = [float(c["threshold"]) for c in curve]
    ys = [float(c["kept"]) for c in curve]
    return round(float(np.interp(threshold, xs, ys)), 4)


Labels = tuple[str | None, float | None]  # (sentiment, quality 1-10)


def label_agreement(got: dict[int, Labels], reference: dict[int, Labels]) -> dict[str, Any]:
    """How often `got` agrees with `reference` (e.g. an LLM-only run) on the tracks of
    `reference`: the sentiment the same label, the quality within QUALITY_TOLERANCE, and
    both. A track `got` lacks, or a missing value, counts as a disagreement."""
    n = len(reference)
    sentiment = quality = both = 0
    for tid, (ref_s, ref_q) in reference.items():
        s, q = got.get(tid, (None, None))
        s_ok = s is not None and s == ref_s
        q_ok = q is not None and ref_q is not None and abs(q - ref_q) <= QUALITY_TOLERANCE
        sentiment += s_ok
        quality += q_ok
        both += s_ok and q_ok
    share = lambda k: round(k / n, 4) if n else None  # noqa: E731
    return {
        "tracks": n,
        "sentiment": share(sentiment),
        "quality": share(quality),
        "both": share(both),
    }
