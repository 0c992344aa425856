-- CockroachDB only: row-level TTL for the high-churn tables of 014.
ALTER TABLE api_audit_log SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
