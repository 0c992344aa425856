"""The worker process: ``cesar-worker`` (run) and ``cesar-worker check`` (health probe).

arq is the engine; :class:`WorkerSettings` is the arq configuration (also usable as
``arq cesar_worker.main.WorkerSettings``), built from :class:`~cesar_worker.config.WorkerConfig`:
redis settings, queue name (``JOB_QUEUE_NAME``), the one job function, the cron duties, and
on_startup/on_shutdown that open and close the :class:`~cesar_worker.runtime.WorkerRuntime`.

Throughput and polling (the cap, documented)
--------------------------------------------
arq reads at most ``queue_read_limit = max(5 * max_jobs, 100)`` job ids per poll and then
sleeps ``poll_delay``, so short jobs are capped at ``queue_read_limit / poll_delay`` per worker.

* ``max_jobs = WORKER_MAX_JOBS`` (default 100) -> 500 ids per poll.
* ``poll_delay = min(JOB_QUEUE_POLL_INTERVAL, WORKER_REDIS_POLL_CAP)`` = min(2.0, 0.05) = 0.05 s
  at the defaults -> a cap of 500 / 0.05 = **10,000 jobs/s per worker** (arq's own defaults
  cap at 200/s; passing 2.0 s straight through would cap at 250/s and delay each fresh job
  up to 2 s). An idle poll is one ZRANGEBYSCORE, so 20 polls/s cost Redis next to nothing.
* ``JOB_QUEUE_POLL_INTERVAL`` keeps its operator meaning, "seconds between polls of the job
  table": it is the reconciler's period,
  i.e. how soon a scheduled or retrying job, or a lost one, is dispatched; and it bounds the
  Redis poll delay from above (setting it below 0.05 makes arq poll faster still).

The reconciler and the lease renewal are loops of the runtime, not arq jobs: no backlog
delays them and they keep running while Redis is away. The other duties (views, pruning,
failure alerts) are arq cron jobs named after the queue (so workers on different queues
never share a cron job id); only one worker of a queue runs each tick. If Redis goes away
the arq loop stops; :func:`serve` starts a new arq worker in the same process once Redis
answers again. Running jobs belong to the runtime's executor, not to arq, so they go on
meanwhile (arq's bodies are JSON, never pickle: see :mod:`cesar_core.jobs.dispatch`).

Graceful stop (SIGTERM or SIGINT)
---------------------------------
1. The worker stops taking jobs: arq polls no more, and a delivery arq had already read but
   not yet started is handed back to arq untouched (``Retry``; nothing claimed, nothing run),
   so another worker takes it at once.
2. Running jobs get up to ``WORKER_SHUTDOWN_GRACE_SECONDS`` (default 20 s; arq's
   ``job_completion_wait``) to finish; their outcomes are written as usual.
3. Jobs still running then are cancelled. Each is recorded as an *interrupted* attempt:
   ``retrying``, due at once, the attempt not counted (it was cut short by us, not by the job),
   dispatch token cleared; the reconciler dispatches it again on its next pass (within
   ``JOB_QUEUE_POLL_INTERVAL``). Job functions are idempotent, so running again is safe.
4. The mirror writes everything still pending, then connections close; exit code 0.

A second signal skips the wait (step 3 at once). If the process is killed before step 4
(``kill -9``, or an orchestrator timeout shorter than the grace period plus a few seconds:
compose gives the worker 30 s), the rows still say ``running``; the reconciler takes them
back once their leases run out (``JOB_QUEUE_STALL_SECONDS`` after the last renewal) and those
attempts count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import uvloop
from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.worker import Function, Retry, Worker, func
from cesar_core.alerts import install_alert_handler
from cesar_core.errors import CesarError, ConfigurationError
from cesar_core.jobs.dispatch import ARQ_FUNCTION, job_deserializer, job_serializer
from cesar_core.jobs.registry import JobRegistry, load_registry
from cesar_core.logging import configure_logging
from cesar_core.settings import load_settings
from redis.exceptions import RedisError

from cesar_worker import metrics
from cesar_worker.config import WorkerConfig
from cesar_worker.runtime import WorkerRuntime
from cesar_worker.schedule import every, scheduled_job_crons

__all__ = ["WorkerSettings", "main", "poll_delay", "quiet_arq_job_lines", "serve", "worker_options"]

log = logging.getLogger("cesar_worker")
RUNTIME_KEY = "cesar"
UNCLAIMED_RETRY_SECONDS = 1.0


def poll_delay(config: WorkerConfig) -> float:
    return min(config.job_queue_poll_interval, config.worker_redis_poll_cap)


def redis_settings(config: WorkerConfig) -> RedisSettings:
    settings = RedisSettings.from_dsn(config.redis_url.get_secret_value())
    settings.conn_timeout = 2
    settings.conn_retries = 2
    settings.conn_retry_delay = 1
    return settings


async def run_job(ctx: dict[str, Any]) -> None:
    runtime: WorkerRuntime = ctx[RUNTIME_KEY]
    if runtime.executor.draining:
        # shutting down: hand the delivery back to arq untouched (nothing was claimed or
        # run), so another worker takes it at once
        raise Retry()
    outcome = await runtime.executor.run(ctx["job_id"])
    if outcome == "unclaimed":
        # the database could not take the claim: arq delivers the same id again shortly
        raise Retry(defer=UNCLAIMED_RETRY_SECONDS)


async def cron_refresh_views(ctx: dict[str, Any]) -> None:
    await ctx[RUNTIME_KEY].duty("refresh_views")


async def cron_prune(ctx: dict[str, Any]) -> None:
    await ctx[RUNTIME_KEY].duty("prune")


async def cron_failure_alerts(ctx: dict[str, Any]) -> None:
    await ctx[RUNTIME_KEY].duty("failure_alerts")


async def on_startup(ctx: dict[str, Any]) -> None:
    """Open the runtime unless :func:`serve` passed one in (``arq`` CLI path)."""
    if RUNTIME_KEY in ctx:
        return
    config = load_settings(WorkerConfig)
    runtime = await WorkerRuntime.open(config)
    await runtime.start()
    ctx[RUNTIME_KEY] = runtime
    ctx["cesar_owned"] = True
    quiet_arq_job_lines(config.log_level)


async def on_shutdown(ctx: dict[str, Any]) -> None:
    if ctx.pop("cesar_owned", False):
        await ctx.pop(RUNTIME_KEY).stop()


def cron_jobs(config: WorkerConfig) -> list[CronJob]:
    prefix = f"{config.job_queue_name}:cron"
    return [
        cron(
            cron_refresh_views,
            name=f"{prefix}.refresh_views",
            timeout=600,
            **every(config.worker_views_refresh_seconds),
        ),
        cron(cron_prune, name=f"{prefix}.prune", minute={17}, second={5}, timeout=1800),
        cron(cron_failure_alerts, name=f"{prefix}.failure_alerts", second={40}, timeout=60),
        # sync.supabase on its own schedule when a sync target is configured
        *scheduled_job_crons(config, prefix, RUNTIME_KEY),
    ]


def functions(registry: JobRegistry) -> list[Function]:
    return [
        func(
            run_job,
            name=ARQ_FUNCTION,
            keep_result=0,
            keep_result_forever=False,
            timeout=registry.max_timeout() + 60,
            max_tries=1_000_000,  # retries are ours (job_queue); arq never gives up on its own
        )
    ]


def worker_options(config: WorkerConfig, registry: JobRegistry) -> dict[str, Any]:
    """Keyword arguments for :class:`arq.worker.Worker`, all derived from the settings."""
    return {
        "functions": functions(registry),
        "cron_jobs": cron_jobs(config),
        "redis_settings": redis_settings(config),
        "queue_name": config.job_queue_name,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_jobs": config.worker_max_jobs,
        "poll_delay": poll_delay(config),
        "keep_result": 0,
        "keep_result_forever": False,
        "max_tries": 1_000_000,
        "health_check_interval": 30,
        "log_results": False,
        "job_completion_wait": config.worker_shutdown_grace_seconds,
        "job_serializer": job_serializer,
        "job_deserializer": job_deserializer,
    }


def _import_time_config() -> WorkerConfig:
    try:
        return load_settings(WorkerConfig)
    except ConfigurationError as exc:  # reported again, loudly, when the worker starts
        log.debug("worker settings invalid at import: %s", exc)
        return WorkerConfig.model_construct()


class WorkerSettings:
    """arq settings from the environment (see :func:`worker_options`)."""

    _options = worker_options(_import_time_config(), load_registry())
    functions = _options["functions"]
    cron_jobs = _options["cron_jobs"]
    redis_settings = _options["redis_settings"]
    queue_name = _options["queue_name"]
    on_startup = on_startup
    on_shutdown = on_shutdown
    max_jobs = _options["max_jobs"]
    poll_delay = _options["poll_delay"]
    keep_result = 0
    keep_result_forever = False
    max_tries = _options["max_tries"]
    health_check_interval = _options["health_check_interval"]
    job_completion_wait = _options["job_completion_wait"]
    job_serializer = staticmethod(job_serializer)
    job_deserializer = staticmethod(job_deserializer)
    log_results = False


async def serve(
    config: WorkerConfig,
    *,
    runtime: WorkerRuntime | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``); survives Redis outages without a restart."""
    own = runtime is None
    if runtime is None:
        runtime = await WorkerRuntime.open(config)
        await runtime.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    current: list[Worker] = []

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():  # a second signal: do not wait for running jobs any longer
            log.warning("received %s again; interrupting running jobs now", sig.name)
            for worker in current:
                worker.handle_sig(sig)
            return
        log.info(
            "received %s; stopping (running jobs get up to %gs to finish)",
            sig.name,
            config.worker_shutdown_grace_seconds,
        )
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    stopper = asyncio.create_task(_stop_when(stop, current, runtime))
    delay = 0.5
    try:
        while not stop.is_set():
            options = worker_options(config, runtime.registry)
            worker = Worker(**options, ctx={RUNTIME_KEY: runtime}, handle_signals=False)
            current[:] = [worker]
            try:
                await worker.async_run()
                delay = 0.5
            except asyncio.CancelledError:
                if not stop.is_set():
                    raise
            except (RedisError, OSError) as exc:
                metrics.REDIS_RECONNECTS.inc()
                log.warning("Redis unavailable (%s); reconnecting in %.1fs", exc, delay)
            finally:
                await _close_quietly(worker)
                current.clear()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 5.0)
    finally:
        stopper.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        # jobs still running here had no arq worker to wait for them (Redis was down at the
        # stop): they get the grace period all the same; after an arq drain there are none
        grace = config.worker_shutdown_grace_seconds if stop.is_set() else 0.0
        if own:
            await runtime.stop(grace=grace)
        else:
            await runtime.executor.stop(grace=grace)


async def _stop_when(stop: asyncio.Event, current: list[Worker], runtime: WorkerRuntime) -> None:
    """Graceful stop: take no new job, let running ones finish within the grace period."""
    await stop.wait()
    runtime.executor.draining = True
    for worker in current:
        # arq: stop polling, wait up to job_completion_wait for the running jobs, then
        # cancel what is left (recorded as interrupted attempts) and leave the main loop
        worker.handle_sig_wait_for_completion(signal.SIGTERM)


async def _close_quietly(worker: Worker) -> None:
    try:
        await asyncio.wait_for(worker.close(), 30)
    except (Exception, asyncio.CancelledError) as exc:
        log.debug("closing the arq worker: %s", exc)


def quiet_arq_job_lines(level: str) -> None:
    """arq's worker logger at WARNING unless LOG_LEVEL is DEBUG.

    arq logs two INFO lines per job ("0.01s → id:token cesar.job()", "... ←"); at thousands of
    jobs a second building those records costs more than the job, and ``job_queue`` plus the
    metrics already record every attempt. A level (not a filter) keeps arq from building them
    at all. Start and stop are logged by :mod:`cesar_worker` itself; arq's warnings and errors
    stay.
    """
    if level.upper() != "DEBUG":
        logging.getLogger("arq.worker").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """``cesar-worker [run|check]``. The worker runs on uvloop, as the API does under
    uvicorn: the same jobs cost about 13% less worker CPU than on asyncio's own loop
    (``make bench``: 0.80 vs 0.92 ms per no-op job). ``arq cesar_worker.main.WorkerSettings``
    runs on the loop arq picks."""
    parser = argparse.ArgumentParser(prog="cesar-worker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the worker (the default)")
    check = sub.add_parser("check", help="exit 0 when this host's worker heartbeat is recent")
    check.add_argument("--max-age", type=float, default=None, help="seconds (default 3 beats + 10)")
    check.add_argument("--worker-id", default=None, help="check this worker id, not the hostname")
    args = parser.parse_args(argv)
    try:
        config = load_settings(WorkerConfig)
    except ConfigurationError as exc:
        print(f"cesar-worker: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        from cesar_worker.health import check_health

        return check_health(config, max_age=args.max_age, worker_id=args.worker_id)
    configure_logging(
        "worker",
        level=config.log_level,
        json_lines=config.log_json,
        secrets=[s.get_secret_value() for s in config.secret_fields().values()],
    )
    quiet_arq_job_lines(config.log_level)
    install_alert_handler(
        "worker", config.database_url.get_secret_value() if config.database_url else None
    )
    try:
        config.require_database_url()
        uvloop.run(serve(config))
    except CesarError as exc:
        log.error("worker stopped: %s", exc)
        print(f"cesar-worker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
