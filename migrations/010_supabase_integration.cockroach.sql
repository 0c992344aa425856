-- CockroachDB only: row-level TTL for the high-churn tables of 010.
ALTER TABLE supabase_sync_runs SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
