-- CockroachDB only: row-level TTL for the high-churn tables of 011.
ALTER TABLE ingestion_log SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
ALTER TABLE dashboard_snapshots SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
ALTER TABLE system_metrics SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
