-- 002 agent foundation: capabilities, sessions, tasks, and workflows.

CREATE TABLE IF NOT EXISTS agent_capabilities (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id    UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    capability  TEXT NOT NULL,
    proficiency FLOAT8 NOT NULL DEFAULT 0.5,
    is_enabled  BOOL NOT NULL DEFAULT true,
    parameters  JSONB NOT NULL DEFAULT '{}'::JSONB,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT agent_capabilities_agent_capability_key UNIQUE (agent_id, capability),
    CONSTRAINT agent_capabilities_proficiency_check CHECK (proficiency >= 0 AND proficiency <= 1),
    CONSTRAINT agent_capabilities_capability_not_blank CHECK (capability <> '')
);

CREATE INDEX IF NOT EXISTS agent_capabilities_capability_idx ON agent_capabilities (capability, proficiency DESC);

CREATE TABLE IF NOT EXISTS agent_sessions (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id         UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'active',
    context          JSONB NOT NULL DEFAULT '{}'::JSONB,
    started_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_activity_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at         TIMESTAMPTZ,
    end_reason       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT agent_sessions_status_check CHECK (status IN ('active', 'ended', 'expired', 'error'))
);

CREATE INDEX IF NOT EXISTS agent_sessions_agent_started_idx ON agent_sessions (agent_id, started_at DESC);

CREATE INDEX IF NOT EXISTS agent_sessions_active_idx ON agent_sessions (last_activity_at) WHERE status = 'active';

CREATE TABLE IF NOT EXISTS agent_tasks (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id       UUID REFERENCES agents (id) ON DELETE SET NULL,
    session_id     UUID REFERENCES agent_sessions (id) ON DELETE SET NULL,
    parent_task_id UUID REFERENCES agent_tasks (id) ON DELETE CASCADE,
    job_id         UUID,
    task_type      TEXT NOT NULL,
    title          TEXT,
    input          JSONB NOT NULL DEFAULT '{}'::JSONB,
    output         JSONB,
    status         TEXT NOT NULL DEFAULT 'pending',
    priority       INT8 NOT NULL DEFAULT 50,
    attempts       INT8 NOT NULL DEFAULT 0,
    deadline_at    TIMESTAMPTZ,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    error          TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT agent_tasks_status_check CHECK (status IN ('pending', 'assigned', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT agent_tasks_priority_check CHECK (priority >= 0 AND priority <= 100),
    CONSTRAINT agent_tasks_attempts_check CHECK (attempts >= 0),
    CONSTRAINT agent_tasks_type_not_blank CHECK (task_type <> '')
);

CREATE INDEX IF NOT EXISTS agent_tasks_agent_status_idx ON agent_tasks (agent_id, status);

CREATE INDEX IF NOT EXISTS agent_tasks_status_priority_idx ON agent_tasks (status, priority DESC, created_at);

CREATE INDEX IF NOT EXISTS agent_tasks_parent_idx ON agent_tasks (parent_task_id);

CREATE INDEX IF NOT EXISTS agent_tasks_session_idx ON agent_tasks (session_id);

CREATE INDEX IF NOT EXISTS agent_tasks_job_idx ON agent_tasks (job_id);

CREATE TABLE IF NOT EXISTS workflow_templates (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        TEXT NOT NULL,
    version     INT8 NOT NULL DEFAULT 1,
    description TEXT,
    definition  JSONB NOT NULL,
    is_active   BOOL NOT NULL DEFAULT true,
    created_by  TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT workflow_templates_name_version_key UNIQUE (name, version),
    CONSTRAINT workflow_templates_version_check CHECK (version >= 1),
    CONSTRAINT workflow_templates_name_not_blank CHECK (name <> '')
);

CREATE INDEX IF NOT EXISTS workflow_templates_active_idx ON workflow_templates (is_active, name);

CREATE TABLE IF NOT EXISTS workflow_executions (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    template_id  UUID REFERENCES workflow_templates (id),
    job_id       UUID,
    status       TEXT NOT NULL DEFAULT 'pending',
    input        JSONB NOT NULL DEFAULT '{}'::JSONB,
    output       JSONB,
    steps        JSONB NOT NULL DEFAULT '[]'::JSONB,
    current_step INT8 NOT NULL DEFAULT 0,
    error        TEXT,
    triggered_by TEXT,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT workflow_executions_status_check CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT workflow_executions_current_step_check CHECK (current_step >= 0)
);

CREATE INDEX IF NOT EXISTS workflow_executions_template_created_idx ON workflow_executions (template_id, created_at DESC);

CREATE INDEX IF NOT EXISTS workflow_executions_status_created_idx ON workflow_executions (status, created_at DESC);

CREATE INDEX IF NOT EXISTS workflow_executions_job_idx ON workflow_executions (job_id);

CREATE INDEX IF NOT EXISTS workflow_executions_created_id_idx ON workflow_executions (created_at, id);
