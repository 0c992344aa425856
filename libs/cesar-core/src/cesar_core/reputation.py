"""Agent reputation: the documented formula, a pure function of outcomes and a reference time.

An *outcome* is a finished task of the agent (``agent_tasks``; when the task itself is not
final, the status and times of the job that backs it in ``job_queue``): success or failure,
when it finished, and its latency (finished - started) when known. Only outcomes that finished
inside the window (``REPUTATION_WINDOW_DAYS``, 30) before the reference time count.

Each outcome weighs ``w = 0.5 ** (age_days / 7)`` (a week-old outcome counts half). Then

* ``reliability    = (Σ w·success + 1) / (Σ w + 2)``   (a Beta(1, 1) prior: no data -> 0.5)
* ``responsiveness = (Σ w·r + 0.5) / (Σ w_l + 1)``, ``r = 1 / (1 + latency_s / 60)`` over the
  outcomes with a latency (weights ``w_l``): a minute's latency scores 0.5, no data 0.5
* ``quality        = (endorsements + 1) / (endorsements + complaints + 2)``
* ``score          = 0.6·reliability + 0.25·responsiveness + 0.15·quality``

all rounded to 6 decimals. ``successes``/``failures`` are plain counts in the window and
``avg_latency_ms`` the plain mean latency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "HALF_LIFE_DAYS",
    "LATENCY_TARGET_SECONDS",
    "SCORE_WEIGHTS",
    "WINDOW_DAYS",
    "Outcome",
    "Reputation",
    "compute",
]

WINDOW_DAYS = 30.0
HALF_LIFE_DAYS = 7.0
LATENCY_TARGET_SECONDS = 60.0
SCORE_WEIGHTS = {"reliability": 0.6, "responsiveness": 0.25, "quality": 0.15}


@dataclass(frozen=True)
class Outcome:
    success: bool
    finished_at: datetime
    latency_ms: float | None


@dataclass(frozen=True)
class Reputation:
    score: float
    reliability: float
    responsiveness: float
    quality: float
    successes: int
    failures: int
    avg_latency_ms: float | None


def _weight(finished_at: datetime, now: datetime, half_life_days: float) -> float:
    age_days = max(0.0, (now - finished_at).total_seconds() / 86400.0)
    return float(0.5 ** (age_days / half_life_days))


def compute(
    outcomes: Iterable[Outcome],
    *,
    now: datetime,
    endorsements: int = 0,
    complaints: int = 0,
    window_days: float = WINDOW_DAYS,
    half_life_days: float = HALF_LIFE_DAYS,
) -> Reputation:
    ok_w = total_w = resp_w = resp_sum = 0.0
    successes = failures = 0
    latencies: list[float] = []
    # summed in a fixed order, so the rounded result never depends on the input's order
    ordered = sorted(outcomes, key=lambda o: (o.finished_at, o.success, o.latency_ms or -1.0))
    for outcome in ordered:
        age_days = (now - outcome.finished_at).total_seconds() / 86400.0
        if age_days > window_days:
            continue
        w = _weight(outcome.finished_at, now, half_life_days)
        total_w += w
        if outcome.success:
            ok_w += w
            successes += 1
        else:
            failures += 1
        if outcome.latency_ms is not None:
            latency = max(0.0, outcome.latency_ms)
            latencies.append(latency)
            resp_w += w
            resp_sum += w / (1.0 + latency / 1000.0 / LATENCY_TARGET_SECONDS)
    reliability = (ok_w + 1.0) / (total_w + 2.0)
    responsiveness = (resp_sum + 0.5) / (resp_w + 1.0)
    quality = (endorsements + 1.0) / (endorsements + complaints + 2.0)
    score = (
        SCORE_WEIGHTS["reliability"] * reliability
        + SCORE_WEIGHTS["responsiveness"] * responsiveness
        + SCORE_WEIGHTS["quality"] * quality
    )
    return Reputation(
        score=round(min(1.0, max(0.0, score)), 6),
        reliability=round(reliability, 6),
        responsiveness=round(responsiveness, 6),
        quality=round(quality, 6),
        successes=successes,
        failures=failures,
        avg_latency_ms=round(sum(latencies) / len(latencies), 3) if latencies else None,
    )
