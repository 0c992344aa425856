-- 019 A2A tasks and the knowledge graph get behaviour: the indexes their queries need.

-- an A2A task's messages (correlation_id = the task id, i.e. its job_queue id), in order
CREATE INDEX IF NOT EXISTS a2a_messages_correlation_idx ON a2a_messages (correlation_id, created_at);
