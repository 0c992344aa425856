"""Agent memory arithmetic shared by the API (recall) and the worker (consolidation).

Everything here is a pure function of its inputs, so recall order and consolidation results are
deterministic and tests can assert them exactly.

Text similarity
    A text is reduced to its set of tokens: lower-cased runs of letters and digits
    (``re.findall(r"\\w+")`` minus ``_``). Two texts are near-duplicates when the Jaccard
    index of their token sets, ``|A & B| / |A | B|``, is at least the merge threshold
    (:data:`MERGE_THRESHOLD`, 0.8 by default).

Recall score (documented in the README)
    ``score = 0.6 * text + 0.25 * importance + 0.15 * recency``, where

    * ``text``: the share of the query's tokens found in the memory (content, summary and
      tags); 0 without a query;
    * ``importance``: the memory's importance (0..1);
    * ``recency``: ``0.5 ** (age_hours / 168)``, the age measured from the memory's last
      access (or creation) to now: a week-old memory counts half.

    Ties go to the newer memory, then the smaller id. Scores are rounded to 6 decimals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "MERGE_THRESHOLD",
    "RECALL_WEIGHTS",
    "RECENCY_HALF_LIFE_HOURS",
    "RecallScore",
    "jaccard",
    "query_overlap",
    "recall_score",
    "recency",
    "strengthen",
    "tokens",
]

MERGE_THRESHOLD = 0.8
RECENCY_HALF_LIFE_HOURS = 168.0
RECALL_WEIGHTS = {"text": 0.6, "importance": 0.25, "recency": 0.15}
# Hebbian step: each co-activation closes this share of the gap to 1
ASSOCIATION_LEARNING_RATE = 0.1

_TOKEN = re.compile(r"[^\W_]+")


def tokens(*texts: str | None) -> frozenset[str]:
    """The lower-cased word tokens of the texts (letters and digits; punctuation splits)."""
    out: set[str] = set()
    for text in texts:
        if text:
            out.update(_TOKEN.findall(text.lower()))
    return frozenset(out)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """``|a & b| / |a | b|``; two empty sets share nothing (0.0)."""
    union = a | b
    if not union:
        return 0.0
    return len(a & b) / len(union)


def query_overlap(query: frozenset[str], memory: frozenset[str]) -> float:
    """The share of the query's tokens present in the memory (0 for an empty query)."""
    if not query:
        return 0.0
    return len(query & memory) / len(query)


def recency(last_touched: datetime, now: datetime) -> float:
    """``0.5 ** (age_hours / RECENCY_HALF_LIFE_HOURS)``; a future timestamp counts as now."""
    age_hours = max(0.0, (now - last_touched).total_seconds() / 3600.0)
    return float(0.5 ** (age_hours / RECENCY_HALF_LIFE_HOURS))


@dataclass(frozen=True)
class RecallScore:
    score: float
    text: float
    importance: float
    recency: float


def recall_score(
    *,
    query: frozenset[str],
    content: str,
    summary: str | None,
    tags: Iterable[str],
    importance: float,
    last_touched: datetime,
    now: datetime,
) -> RecallScore:
    text = query_overlap(query, tokens(content, summary, *tags))
    fresh = recency(last_touched, now)
    score = (
        RECALL_WEIGHTS["text"] * text
        + RECALL_WEIGHTS["importance"] * importance
        + RECALL_WEIGHTS["recency"] * fresh
    )
    return RecallScore(round(score, 6), round(text, 6), importance, round(fresh, 6))


def strengthen(strength: float, times: int, rate: float = ASSOCIATION_LEARNING_RATE) -> float:
    """An association's strength after ``times`` co-activations: ``1 - (1 - s)(1 - rate)^n``."""
    return round(1.0 - (1.0 - strength) * (1.0 - rate) ** times, 6)
