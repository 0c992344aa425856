-- 007 continual learning: learning episodes, per-skill progress, and
-- versioned checkpoints of what an agent has learned.

CREATE TABLE IF NOT EXISTS learning_episodes (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id     UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    task_id      UUID REFERENCES agent_tasks (id) ON DELETE SET NULL,
    episode_type TEXT NOT NULL DEFAULT 'task',
    skill        TEXT,
    context      JSONB NOT NULL DEFAULT '{}'::JSONB,
    actions      JSONB NOT NULL DEFAULT '[]'::JSONB,
    outcome      TEXT NOT NULL DEFAULT 'unknown',
    reward       FLOAT8,
    feedback     JSONB NOT NULL DEFAULT '{}'::JSONB,
    metrics      JSONB NOT NULL DEFAULT '{}'::JSONB,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at     TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT learning_episodes_type_check CHECK (episode_type IN ('task', 'feedback', 'exploration', 'evaluation', 'demonstration')),
    CONSTRAINT learning_episodes_outcome_check CHECK (outcome IN ('success', 'failure', 'partial', 'unknown'))
);

CREATE INDEX IF NOT EXISTS learning_episodes_agent_created_idx ON learning_episodes (agent_id, created_at DESC);

CREATE INDEX IF NOT EXISTS learning_episodes_skill_created_idx ON learning_episodes (skill, created_at DESC);

CREATE INDEX IF NOT EXISTS learning_episodes_task_idx ON learning_episodes (task_id);

CREATE TABLE IF NOT EXISTS skill_progress (
    agent_id          UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    skill             TEXT NOT NULL,
    skill_level       FLOAT8 NOT NULL DEFAULT 0,
    confidence        FLOAT8 NOT NULL DEFAULT 0,
    learning_rate     FLOAT8 NOT NULL DEFAULT 0.1,
    attempts          INT8 NOT NULL DEFAULT 0,
    successes         INT8 NOT NULL DEFAULT 0,
    failures          INT8 NOT NULL DEFAULT 0,
    streak            INT8 NOT NULL DEFAULT 0,
    last_practiced_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, skill),
    CONSTRAINT skill_progress_level_check CHECK (skill_level >= 0 AND skill_level <= 1),
    CONSTRAINT skill_progress_confidence_check CHECK (confidence >= 0 AND confidence <= 1),
    CONSTRAINT skill_progress_learning_rate_check CHECK (learning_rate > 0 AND learning_rate <= 1),
    CONSTRAINT skill_progress_counts_check CHECK (attempts >= 0 AND successes >= 0 AND failures >= 0 AND successes + failures <= attempts),
    CONSTRAINT skill_progress_skill_not_blank CHECK (skill <> '')
);

CREATE INDEX IF NOT EXISTS skill_progress_skill_level_idx ON skill_progress (skill, skill_level DESC);

CREATE TABLE IF NOT EXISTS learning_checkpoints (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id    UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    skill       TEXT NOT NULL,
    version     INT8 NOT NULL DEFAULT 1,
    parameters  JSONB NOT NULL DEFAULT '{}'::JSONB,
    metrics     JSONB NOT NULL DEFAULT '{}'::JSONB,
    episodes_seen INT8 NOT NULL DEFAULT 0,
    is_current  BOOL NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT learning_checkpoints_agent_skill_version_key UNIQUE (agent_id, skill, version),
    CONSTRAINT learning_checkpoints_version_check CHECK (version >= 1),
    CONSTRAINT learning_checkpoints_episodes_check CHECK (episodes_seen >= 0)
);

-- at most one current checkpoint per agent and skill
CREATE UNIQUE INDEX IF NOT EXISTS learning_checkpoints_current_key ON learning_checkpoints (agent_id, skill) WHERE is_current = true;
