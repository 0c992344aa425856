"""Retry delays: ``JOB_QUEUE_BACKOFF_MINUTES`` doubled per attempt, with jitter, capped."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["backoff_seconds"]


def backoff_seconds(
    attempt: int,
    *,
    base_minutes: float,
    max_minutes: float,
    jitter: float = 0.2,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before the attempt after ``attempt`` (1-based) failed.

    ``base * 2**(attempt-1)``, capped at ``max_minutes``, then spread by +/- ``jitter``
    (never above the cap, never negative).
    """
    cap = max_minutes * 60.0
    delay = min(cap, base_minutes * 60.0 * 2.0 ** max(0, attempt - 1))
    spread = delay * jitter * (2.0 * rand() - 1.0)
    return max(0.0, min(cap, delay + spread))
