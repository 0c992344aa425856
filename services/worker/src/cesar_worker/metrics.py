"""Prometheus metrics of the worker (served on :9101 by :func:`start_metrics_server`)."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "ALERTS_SENT",
    "ARQ_QUEUE_LENGTH",
    "CRON_RUNS",
    "JOBS",
    "JOBS_RUNNING",
    "JOB_DURATION",
    "JOB_RETRIES",
    "MIRROR_BATCH",
    "MIRROR_FLUSH_ERRORS",
    "QUEUE_DEPTH",
    "RECENT_FAILURES",
    "RECONCILER_ACTIONS",
    "REDIS_RECONNECTS",
    "MetricsServer",
    "start_metrics_server",
]

JOBS = Counter(
    "cesar_jobs",
    "Job attempts by type and outcome (succeeded, retrying, failed, stale, interrupted)",
    ["job_type", "outcome"],
)
JOB_DURATION = Histogram(
    "cesar_job_duration_seconds",
    "Run time of job attempts",
    ["job_type"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
)
JOB_RETRIES = Counter(
    "cesar_job_retries", "Attempts that failed and were scheduled again", ["job_type"]
)
JOBS_RUNNING = Gauge("cesar_jobs_running", "Jobs running in this worker now")
QUEUE_DEPTH = Gauge("cesar_job_queue_depth", "Active rows in job_queue by status", ["status"])
ARQ_QUEUE_LENGTH = Gauge("cesar_arq_queue_length", "Entries in this worker's arq queue")
RECONCILER_ACTIONS = Counter(
    "cesar_reconciler_actions",
    "Reconciler actions (dispatched, redispatched_lost, redispatched_stalled, failed_stalled)",
    ["action"],
)
MIRROR_BATCH = Histogram(
    "cesar_mirror_batch_size",
    "Transitions written per mirror transaction",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000),
)
MIRROR_FLUSH_ERRORS = Counter("cesar_mirror_flush_errors", "Mirror transactions that failed")
RECENT_FAILURES = Gauge(
    "cesar_jobs_failed_recent", "Jobs that ended failed within the alert window (15 minutes)"
)
SYNC_LAG = Gauge(
    "cesar_sync_lag_seconds", "Seconds since each synced system's last success", ["system"]
)
INGESTION_ERRORS = Gauge(
    "cesar_ingestion_errors", "Rows that failed ingestion in the last 24 hours", ["source"]
)
ALERTS_SENT = Counter("cesar_job_alerts", "Failure alerts by delivery outcome", ["outcome"])
CRON_RUNS = Counter("cesar_cron_runs", "Cron duty runs by duty and outcome", ["duty", "outcome"])
REDIS_RECONNECTS = Counter("cesar_worker_redis_reconnects", "Times the arq loop was restarted")

MetricsServer = tuple[WSGIServer, threading.Thread]


def start_metrics_server(port: int, host: str = "0.0.0.0") -> MetricsServer:
    server, thread = start_http_server(port, addr=host)
    return server, thread
