"""What one API process holds while it runs: settings, pool, Redis, job queue, fan-out, limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cesar_core.db import Database
from cesar_core.jobs import JobQueue, JobRegistry
from cesar_core.ratelimit import LeasedLimiter
from cesar_core.redis import RedisClient

from cesar_api.address_slots import AddressSlots
from cesar_api.auth import KeyChecker
from cesar_api.database import DatabaseHolder
from cesar_api.metrics import ApiMetrics
from cesar_api.settings import ApiSettings

if TYPE_CHECKING:
    from cesar_api.event_hub import EventHub

__all__ = ["Resources"]


@dataclass
class Resources:
    settings: ApiSettings
    metrics: ApiMetrics
    database: DatabaseHolder
    redis: RedisClient
    limits: LeasedLimiter
    hub: EventHub
    registry: JobRegistry
    streams: AddressSlots
    keys: KeyChecker = field(default_factory=KeyChecker)
    _queue: JobQueue | None = None
    _queue_db: Database | None = None

    def db(self) -> Database:
        return self.database.get()

    def queue(self) -> JobQueue:
        """The job queue on the current pool (built on first use, once the pool exists)."""
        db = self.db()
        if self._queue is None or self._queue_db is not db:
            self._queue = JobQueue(db, self.redis, self.settings, self.registry)
            self._queue_db = db
        return self._queue
