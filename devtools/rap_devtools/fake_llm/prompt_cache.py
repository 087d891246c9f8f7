"""Prompt caching as OpenAI documents it, for the fake provider's `cached_tokens`.

OpenAI's "Prompt caching" guide (https://platform.openai.com/docs/guides/prompt-caching):
caching is automatic for prompts of 1,024 tokens or more; cache hits are only possible
for exact prefix matches; the cache is hit in increments of 128 tokens after the
first 1,024 (1024, 1152, 1280, ...); the cached part is reported as
`usage.prompt_tokens_details.cached_tokens` (0 for a prompt under 1,024 tokens);
cached prefixes generally stay active for 5 to 10 minutes of inactivity, up to an hour
off-peak.

vLLM's Automatic Prefix Caching (docs.vllm.ai, design/prefix_caching) caches whole
KV blocks (16 tokens for a usual transformer), with no minimum, and reports them the
same way when served with `--enable-prompt-tokens-details`: `min_tokens=16, step=16`.

Modelled here: each request's prompt, as tokens (tokens.py), is hashed at every
checkpoint length min_tokens + step n it reaches (1024 + 128 n for OpenAI); `cached_tokens` is the longest checkpoint
whose hash a request within the last `ttl` seconds also had (a hit refreshes it, as
use keeps a real cache entry alive). The request itself then seeds its checkpoints
for those after it. So the first request with a prefix caches nothing, and a second
with the same 1,024+ token prefix reports it.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence

MIN_TOKENS = 1024
INCREMENT = 128
DEFAULT_TTL = 600.0  # "5 to 10 minutes of inactivity": the upper end


def checkpoints(n_tokens: int, min_tokens: int = MIN_TOKENS, step: int = INCREMENT) -> range:
    """The prefix lengths a prompt of `n_tokens` tokens can be cached at."""
    return range(min_tokens, n_tokens + 1, step)


class PromptCache:
    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        # prefix digest -> last used (monotonic s), least recently used first
        self.seen: OrderedDict[bytes, float] = OrderedDict()

    def lookup_and_store(
        self,
        tokens: Sequence[int],
        now: float,
        min_tokens: int = MIN_TOKENS,
        step: int = INCREMENT,
    ) -> int:
        """Tokens of `tokens` served from the cache; then remember its prefixes."""
        self._expire(now)
        cached = 0
        h = hashlib.sha256()
        start = 0
        # The rule is part of the key: a change of rule must not hit the old entries.
        h.update(f"{min_tokens}/{step}".encode())
        for n in checkpoints(len(tokens), min_tokens, step):
            h.update(array("q", tokens[start:n]).tobytes())
            start = n
            key = h.copy().digest()
            if key in self.seen:  # the digest chains: the whole prefix up to n matched
                cached = n
            self.seen[key] = now
            self.seen.move_to_end(key)
        return cached

    def _expire(self, now: float) -> None:
        while self.seen:
            key, used = next(iter(self.seen.items()))
            if now - used <= self.ttl:
                return
            del self.seen[key]

    def clear(self) -> None:
        self.seen.clear()
