-- Issue 25: what the LLM lane's bill and the cascade need per shard. Added with
-- defaults, so the previous release's pods (which never name them) keep committing.
ALTER TABLE run_shards
    -- Prompt tokens the provider served from its prompt cache (usage.prompt_tokens_details
    -- .cached_tokens): part of tokens_prompt, billed at the cached price.
    ADD COLUMN tokens_cached bigint NOT NULL DEFAULT 0,
    -- Tracks the cascade's first analyzer was sure of: labelled by it, never sent.
    ADD COLUMN cascade_kept integer NOT NULL DEFAULT 0;
