-- 005 knowledge graph: entities, directed typed relations, and observations
-- that back them.

CREATE TABLE IF NOT EXISTS kg_entities (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    entity_type         TEXT NOT NULL,
    name                TEXT NOT NULL,
    description         TEXT,
    aliases             TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    properties          JSONB NOT NULL DEFAULT '{}'::JSONB,
    confidence          FLOAT8 NOT NULL DEFAULT 1.0,
    source              TEXT,
    created_by_agent_id UUID REFERENCES agents (id) ON DELETE SET NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT kg_entities_type_name_key UNIQUE (entity_type, name),
    CONSTRAINT kg_entities_confidence_check CHECK (confidence >= 0 AND confidence <= 1),
    CONSTRAINT kg_entities_name_not_blank CHECK (name <> ''),
    CONSTRAINT kg_entities_type_not_blank CHECK (entity_type <> '')
);

CREATE INDEX IF NOT EXISTS kg_entities_name_idx ON kg_entities (name);

CREATE INDEX IF NOT EXISTS kg_entities_aliases_gin_idx ON kg_entities USING GIN (aliases);

CREATE INDEX IF NOT EXISTS kg_entities_created_by_idx ON kg_entities (created_by_agent_id);

CREATE TABLE IF NOT EXISTS kg_relations (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    source_id           UUID NOT NULL REFERENCES kg_entities (id) ON DELETE CASCADE,
    target_id           UUID NOT NULL REFERENCES kg_entities (id) ON DELETE CASCADE,
    relation_type       TEXT NOT NULL,
    weight              FLOAT8 NOT NULL DEFAULT 1.0,
    confidence          FLOAT8 NOT NULL DEFAULT 1.0,
    properties          JSONB NOT NULL DEFAULT '{}'::JSONB,
    valid_from          TIMESTAMPTZ,
    valid_to            TIMESTAMPTZ,
    created_by_agent_id UUID REFERENCES agents (id) ON DELETE SET NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT kg_relations_source_target_type_key UNIQUE (source_id, target_id, relation_type),
    CONSTRAINT kg_relations_type_not_blank CHECK (relation_type <> ''),
    CONSTRAINT kg_relations_weight_check CHECK (weight >= 0),
    CONSTRAINT kg_relations_confidence_check CHECK (confidence >= 0 AND confidence <= 1),
    CONSTRAINT kg_relations_validity_check CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_to >= valid_from)
);

-- outgoing and incoming edge lookups
CREATE INDEX IF NOT EXISTS kg_relations_source_type_idx ON kg_relations (source_id, relation_type);

CREATE INDEX IF NOT EXISTS kg_relations_target_type_idx ON kg_relations (target_id, relation_type);

CREATE INDEX IF NOT EXISTS kg_relations_type_idx ON kg_relations (relation_type);

CREATE TABLE IF NOT EXISTS kg_observations (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    entity_id   UUID NOT NULL REFERENCES kg_entities (id) ON DELETE CASCADE,
    relation_id UUID REFERENCES kg_relations (id) ON DELETE CASCADE,
    agent_id    UUID REFERENCES agents (id) ON DELETE SET NULL,
    content     TEXT NOT NULL,
    source      TEXT,
    confidence  FLOAT8 NOT NULL DEFAULT 1.0,
    observed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT kg_observations_confidence_check CHECK (confidence >= 0 AND confidence <= 1)
);

CREATE INDEX IF NOT EXISTS kg_observations_entity_observed_idx ON kg_observations (entity_id, observed_at DESC);

CREATE INDEX IF NOT EXISTS kg_observations_relation_idx ON kg_observations (relation_id);

CREATE INDEX IF NOT EXISTS kg_observations_agent_idx ON kg_observations (agent_id, observed_at DESC);
