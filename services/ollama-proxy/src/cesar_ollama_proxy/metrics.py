"""Prometheus metrics, in a registry of their own per app (two apps in one process, as in
tests, do not collide). Model labels are bounded: after ``PROXY_MAX_MODEL_LABELS`` distinct
names, new ones are counted as ``other``, so a client cannot blow up the series count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ProxyMetrics"]

_M = TypeVar("_M", Counter, Histogram)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                    60, 120, 300)  # fmt: skip


class ProxyMetrics:
    def __init__(self, *, max_model_labels: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._max_models = max_model_labels
        self._models: set[str] = set()
        self._children: dict[tuple[Any, ...], Any] = {}
        r = self.registry
        self.requests = Counter(
            "ollama_proxy_requests_total",
            "Requests handled, by route, model and outcome",
            ["route", "model", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "ollama_proxy_request_duration_seconds",
            "Time from request to the last byte of the answer",
            ["route", "cache"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "ollama_proxy_time_to_first_token_seconds",
            "Time from request to the first streamed chunk from Ollama",
            ["route", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "ollama_proxy_tokens_total",
            "Tokens Ollama reported in final chunks (kind=prompt|completion)",
            ["model", "kind"],
            registry=r,
        )
        self.cache = Counter(
            "ollama_proxy_cache_total",
            "Cache lookups by result (hit, miss) and skipped ones (bypass, skip)",
            ["route", "result"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "ollama_proxy_upstream_errors_total",
            "Upstream failures (unreachable, timeout, status, stream)",
            ["route", "kind"],
            registry=r,
        )
        self.rate_limited = Counter(
            "ollama_proxy_rate_limited_total",
            "Requests refused by a rate limit, by scope (client, model)",
            ["scope"],
            registry=r,
        )
        self.redis_errors = Counter(
            "ollama_proxy_redis_errors_total",
            "Redis operations that failed (the proxy served anyway)",
            ["op"],
            registry=r,
        )
        self.flushes = Counter(
            "ollama_proxy_aggregate_flushes_total",
            "Flushes of the hourly aggregates to llm_cache_metrics, by result",
            ["result"],
            registry=r,
        )
        self.in_flight = Gauge(
            "ollama_proxy_upstream_in_flight", "Model requests holding an upstream slot", registry=r
        )
        self.queued = Gauge(
            "ollama_proxy_upstream_queued",
            "Model requests waiting for an upstream slot",
            registry=r,
        )
        self.local_cache_bytes = Gauge(
            "ollama_proxy_cache_l1_bytes",
            "Bytes held by the in-process copy of the response cache",
            registry=r,
        )
        self.local_cache_entries = Gauge(
            "ollama_proxy_cache_l1_entries",
            "Answers held by the in-process copy of the response cache",
            registry=r,
        )

    def bind_upstream(self, in_flight: Callable[[], float], queued: Callable[[], float]) -> None:
        self.in_flight.set_function(in_flight)
        self.queued.set_function(queued)

    def bind_local_cache(self, size: Callable[[], float], entries: Callable[[], float]) -> None:
        self.local_cache_bytes.set_function(size)
        self.local_cache_entries.set_function(entries)

    def model_label(self, model: str) -> str:
        if not model:
            return "-"
        if model in self._models:
            return model
        if len(self._models) < self._max_models:
            self._models.add(model)
            return model
        return "other"

    def child(self, metric: _M, *labels: str) -> _M:
        """``metric.labels(*labels)``, remembered: the label sets are bounded (routes, model
        labels, outcomes) and ``labels()`` validates and locks on every call."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def redis_error(self, op: str) -> None:
        self.redis_errors.labels(op).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
