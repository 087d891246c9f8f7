"""The distilled `quality` model (issue 15): learn the LLM's judgement (quality 1-10,
complexity 0-1) from the free analyzers' stored features, store it versioned in
Postgres, score the corpus with it.

- features.py: the feature vector of a track, read from its stored `algorithmic` and
  `emotion` results (and, optionally, its embedding);
- training.py: k-fold evaluation (gradient boosting vs a Ridge and a constant
  baseline), the final fit;
- agreement.py: the sentiment head and its out-of-fold calibration, the chance the LLM
  would agree with the model (the llm cascade's confidence, issue 25);
- storage.py: the `models` table (migrations 0009, 0014): save, find, load (skops with an
  explicit trusted-types list, never pickle; sha256 and scikit-learn version checked).
"""

from analyzer_runtime.ledger.models import QUALITY_MODEL

MODEL_NAME = QUALITY_MODEL
