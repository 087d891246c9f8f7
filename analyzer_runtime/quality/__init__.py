"""The distilled `quality` model (issue 15): learn the LLM's judgement (quality 1-10,
complexity 0-1) from the free analyzers' stored features, store it versioned in
Postgres, score the corpus with it.

- features.py: the feature vector of a track, read from its stored `algorithmic` and
  `emotion` results (and, optionally, its embedding);
- training.py: k-fold evaluation (gradient boosting vs a Ridge and a constant
  baseline), the final fit;
- storage.py: the `models` table (migration 0009): save, find, load (sha256 checked).
"""

MODEL_NAME = "quality"
