-- 008 local LLM integration (Ollama): known models, a request log, a
-- persistent response cache, and hourly cache/latency aggregates written by ollama-proxy.
-- llm_requests (7 days) and llm_response_cache (24 hours) are high-churn (expires_at):
-- TTL on CockroachDB, pruned on PostgreSQL. llm_cache_metrics is an aggregate and kept.

CREATE TABLE IF NOT EXISTS llm_models (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name           TEXT NOT NULL UNIQUE,
    provider       TEXT NOT NULL DEFAULT 'ollama',
    model_family   TEXT,
    parameter_size TEXT,
    quantization   TEXT,
    context_length INT8,
    digest         TEXT,
    size_bytes     INT8,
    status         TEXT NOT NULL DEFAULT 'missing',
    is_default     BOOL NOT NULL DEFAULT false,
    options        JSONB NOT NULL DEFAULT '{}'::JSONB,
    last_pulled_at TIMESTAMPTZ,
    last_used_at   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT llm_models_status_check CHECK (status IN ('available', 'pulling', 'missing', 'error', 'disabled')),
    CONSTRAINT llm_models_name_not_blank CHECK (name <> ''),
    CONSTRAINT llm_models_context_length_check CHECK (context_length IS NULL OR context_length > 0),
    CONSTRAINT llm_models_size_check CHECK (size_bytes IS NULL OR size_bytes >= 0)
);

-- at most one default model
CREATE UNIQUE INDEX IF NOT EXISTS llm_models_single_default_key ON llm_models (is_default) WHERE is_default = true;

CREATE TABLE IF NOT EXISTS llm_requests (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    model             TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    agent_id          UUID REFERENCES agents (id) ON DELETE SET NULL,
    request_hash      TEXT,
    streamed          BOOL NOT NULL DEFAULT false,
    cache_hit         BOOL NOT NULL DEFAULT false,
    status            TEXT NOT NULL DEFAULT 'ok',
    http_status       INT8,
    prompt_tokens     INT8 NOT NULL DEFAULT 0,
    completion_tokens INT8 NOT NULL DEFAULT 0,
    latency_ms        FLOAT8,
    ttft_ms           FLOAT8,
    error             TEXT,
    client            TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '7 days',
    CONSTRAINT llm_requests_status_check CHECK (status IN ('ok', 'error', 'timeout', 'rate_limited', 'cancelled')),
    CONSTRAINT llm_requests_tokens_check CHECK (prompt_tokens >= 0 AND completion_tokens >= 0),
    CONSTRAINT llm_requests_latency_check CHECK ((latency_ms IS NULL OR latency_ms >= 0) AND (ttft_ms IS NULL OR ttft_ms >= 0))
);

CREATE INDEX IF NOT EXISTS llm_requests_model_created_idx ON llm_requests (model, created_at DESC);

CREATE INDEX IF NOT EXISTS llm_requests_created_idx ON llm_requests (created_at);

CREATE INDEX IF NOT EXISTS llm_requests_hash_idx ON llm_requests (request_hash);

CREATE INDEX IF NOT EXISTS llm_requests_agent_idx ON llm_requests (agent_id, created_at DESC);

CREATE INDEX IF NOT EXISTS llm_requests_expires_idx ON llm_requests (expires_at);

CREATE TABLE IF NOT EXISTS llm_response_cache (
    cache_key     TEXT PRIMARY KEY,
    model         TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    request       JSONB NOT NULL DEFAULT '{}'::JSONB,
    response      JSONB NOT NULL,
    streamed      BOOL NOT NULL DEFAULT false,
    hit_count     INT8 NOT NULL DEFAULT 0,
    last_hit_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '24 hours',
    CONSTRAINT llm_response_cache_hit_count_check CHECK (hit_count >= 0)
);

CREATE INDEX IF NOT EXISTS llm_response_cache_model_idx ON llm_response_cache (model, created_at DESC);

CREATE INDEX IF NOT EXISTS llm_response_cache_expires_idx ON llm_response_cache (expires_at);

CREATE TABLE IF NOT EXISTS llm_cache_metrics (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    model             TEXT NOT NULL,
    -- start of the hour the counters cover
    bucket_start      TIMESTAMPTZ NOT NULL,
    requests          INT8 NOT NULL DEFAULT 0,
    cache_hits        INT8 NOT NULL DEFAULT 0,
    cache_misses      INT8 NOT NULL DEFAULT 0,
    prompt_tokens     INT8 NOT NULL DEFAULT 0,
    completion_tokens INT8 NOT NULL DEFAULT 0,
    total_latency_ms  FLOAT8 NOT NULL DEFAULT 0,
    max_latency_ms    FLOAT8 NOT NULL DEFAULT 0,
    errors            INT8 NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT llm_cache_metrics_model_bucket_key UNIQUE (model, bucket_start),
    CONSTRAINT llm_cache_metrics_counts_check CHECK (
        requests >= 0 AND cache_hits >= 0 AND cache_misses >= 0 AND errors >= 0
        AND prompt_tokens >= 0 AND completion_tokens >= 0
    ),
    CONSTRAINT llm_cache_metrics_latency_check CHECK (total_latency_ms >= 0 AND max_latency_ms >= 0)
);

CREATE INDEX IF NOT EXISTS llm_cache_metrics_bucket_idx ON llm_cache_metrics (bucket_start DESC);
