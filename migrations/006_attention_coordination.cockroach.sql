-- CockroachDB only: row-level TTL for the high-churn tables of 006.
ALTER TABLE attention_shifts SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
