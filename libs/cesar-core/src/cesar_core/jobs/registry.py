"""Job types as plugins: a spec (name, payload model, timeout) and the function that runs it.

Specs of the built-in types live in :mod:`cesar_core.jobs.builtin`, so anything that enqueues
(the API) validates payloads without importing the worker. Functions are entry points in the
group ``cesar.jobs`` (declared by ``services/worker``): each names a :class:`JobType`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from cesar_core.db import Database
from cesar_core.errors import InvalidPayload, UnknownJobType
from cesar_core.jobs.models import Job
from cesar_core.jobs.settings import JobSettings
from cesar_core.redis import RedisClient

if TYPE_CHECKING:
    from cesar_core.jobs.queue import JobQueue

__all__ = [
    "ENTRY_POINT_GROUP",
    "JobContext",
    "JobFunction",
    "JobRegistry",
    "JobSpec",
    "JobType",
    "PermanentJobError",
    "load_registry",
]

ENTRY_POINT_GROUP = "cesar.jobs"
log = logging.getLogger(__name__)


class PermanentJobError(Exception):
    """Raised by a job function when another attempt cannot help: the job fails at once."""


@dataclass(frozen=True)
class JobSpec:
    name: str
    payload_model: type[BaseModel]
    timeout_seconds: float = 300.0
    description: str = ""


@dataclass
class JobContext:
    """What a job function gets besides its payload."""

    job: Job
    db: Database
    redis: RedisClient
    queue: JobQueue
    settings: JobSettings
    worker_id: str
    clock: Callable[[], datetime]
    resources: dict[str, Any] = field(default_factory=dict)


JobFunction = Callable[[JobContext, Any], Awaitable[Any]]


@dataclass(frozen=True)
class JobType:
    spec: JobSpec
    function: JobFunction

    @property
    def name(self) -> str:
        return self.spec.name


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)


class JobRegistry:
    """Job types by name; validates payloads before anything is enqueued."""

    def __init__(self, specs: Iterable[JobSpec] = (), types: Iterable[JobType] = ()) -> None:
        self._specs: dict[str, JobSpec] = {}
        self._functions: dict[str, JobFunction] = {}
        for spec in specs:
            self.add_spec(spec)
        for job_type in types:
            self.register(job_type)

    def add_spec(self, spec: JobSpec) -> None:
        self._specs[spec.name] = spec

    def register(self, job_type: JobType) -> None:
        """Add (or replace) a job type with its function."""
        self._specs[job_type.name] = job_type.spec
        self._functions[job_type.name] = job_type.function

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def spec(self, job_type: str) -> JobSpec:
        try:
            return self._specs[job_type]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownJobType(f"unknown job type {job_type!r} (known: {known})") from None

    def function(self, job_type: str) -> JobFunction:
        self.spec(job_type)
        try:
            return self._functions[job_type]
        except KeyError:
            raise UnknownJobType(f"job type {job_type!r} has no function installed") from None

    def parse(self, job_type: str, payload: Mapping[str, Any] | None) -> BaseModel:
        spec = self.spec(job_type)
        if payload is not None and not isinstance(payload, Mapping):
            raise InvalidPayload(f"{job_type}: payload must be a JSON object")
        try:
            return spec.payload_model.model_validate(dict(payload or {}))
        except ValidationError as exc:
            raise InvalidPayload(f"{job_type}: {_describe(exc)}") from exc

    def validate(self, job_type: str, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """The payload, validated and normalised to JSON; UnknownJobType / InvalidPayload."""
        return self.parse(job_type, payload).model_dump(mode="json")

    def max_timeout(self) -> float:
        return max((s.timeout_seconds for s in self._specs.values()), default=300.0)


def load_registry(*, group: str = ENTRY_POINT_GROUP) -> JobRegistry:
    """Built-in specs plus every installed entry point in ``cesar.jobs``."""
    from cesar_core.jobs.builtin import BUILTIN_SPECS

    registry = JobRegistry(BUILTIN_SPECS)
    for ep in entry_points(group=group):
        try:
            job_type = ep.load()
        except Exception:
            log.exception("job plugin %s (%s) cannot be loaded; skipped", ep.name, ep.value)
            continue
        if not isinstance(job_type, JobType):
            log.error("job plugin %s (%s) is not a JobType; skipped", ep.name, ep.value)
            continue
        registry.register(job_type)
    return registry
