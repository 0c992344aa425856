"""Prometheus metrics, one registry per app (so tests can build many apps in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ApiMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "cesar_api_requests_total",
            "HTTP requests by method, route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "cesar_api_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pool_size = Gauge("cesar_api_db_pool_size", "open database connections", registry=r)
        self.pool_free = Gauge("cesar_api_db_pool_free", "idle database connections", registry=r)
        self.pool_max = Gauge("cesar_api_db_pool_max", "database pool capacity", registry=r)
        self.ws_connections = Gauge(
            "cesar_api_websocket_connections", "open WebSocket event streams", registry=r
        )
        self.ws_slow_disconnects = Counter(
            "cesar_api_websocket_slow_disconnects_total",
            "WebSocket clients disconnected because their queue was full",
            registry=r,
        )
        self.events_published = Counter(
            "cesar_api_events_published_total", "agent events published to the stream", registry=r
        )
        self.events_received = Counter(
            "cesar_api_events_received_total",
            "events read from the stream by this process's fan-out reader",
            registry=r,
        )
        self.events_delivered = Counter(
            "cesar_api_events_delivered_total",
            "events queued to WebSocket clients",
            registry=r,
        )
        self.rate_limited = Counter(
            "cesar_api_rate_limited_total", "requests refused with 429", ["scope"], registry=r
        )
        self.rate_limit_errors = Counter(
            "cesar_api_rate_limit_errors_total",
            "rate limit checks skipped because Redis failed (fail open)",
            registry=r,
        )

    def watch_pool(self, stats: Callable[[], tuple[int, int, int] | None]) -> None:
        """Pool gauges read at scrape time."""

        def field(index: int) -> Callable[[], float]:
            def read() -> float:
                values = stats()
                return float(values[index]) if values else 0.0

            return read

        self.pool_size.set_function(field(0))
        self.pool_free.set_function(field(1))
        self.pool_max.set_function(field(2))
