"""The `llm` analyzer: any OpenAI-compatible chat API (Novita, Ollama, OpenAI, custom).

Modules, from the outside in:
- `analyzer`  - LLMAnalyzer: packing, repair, fallback, accounting (the registry entry);
- `client`    - one chat completion with rate limit, retries, timeout, circuit breaker;
- `breaker`   - the per-pod circuit breaker;
- `prompt`    - the prompt (lyrics as data), truncation to a token budget;
- `schema`    - the pydantic output schema and the parsing of answers;
- `presets`   - providers, models, prices, the analyzer's version string;
- `estimate`  - the planning-time estimate of requests, tokens, cost and duration;
- `redaction` - keeping the API key out of logs, errors and status.

Nothing here imports the `openai` SDK at package import time: the operator reads
presets and prices without paying for it.
"""
