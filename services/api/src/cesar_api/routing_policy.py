"""Which routing rule applies to a request: the matching of a rule's ``conditions``.

``conditions`` is a JSON object; a rule applies when every key matches. The keys
``request_type``, ``capability`` and ``agent_type`` compare with the request's fields of that
name, any other key with the same key of the request's ``request`` object. A scalar value must
be equal; a list value matches any of its items. ``{}`` matches every request (the seeded
``default-fallback`` rule). Rules are tried by ``priority`` (lowest first), then name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["FIELD_KEYS", "condition_problem", "rule_matches"]

FIELD_KEYS = ("request_type", "capability", "agent_type")
_SCALARS = (str, int, float, bool)


def condition_problem(conditions: Mapping[str, Any]) -> str | None:
    """Why these conditions cannot be evaluated (None when they can)."""
    for key, value in conditions.items():
        if isinstance(value, list):
            if not value or not all(isinstance(v, _SCALARS) for v in value):
                return f"conditions.{key}: a list must hold strings, numbers or booleans"
        elif not isinstance(value, _SCALARS):
            return f"conditions.{key}: must be a string, number, boolean or a list of them"
    return None


def _value(request: Mapping[str, Any], key: str) -> Any:
    if key in FIELD_KEYS:
        return request.get(key)
    extra = request.get("request") or {}
    return extra.get(key) if isinstance(extra, Mapping) else None


def rule_matches(conditions: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    for key, wanted in conditions.items():
        actual = _value(request, key)
        if actual is None:
            return False
        options = wanted if isinstance(wanted, list) else [wanted]
        # bool is an int in Python: compare with the type too, so true never equals 1
        if not any(type(actual) is type(o) and actual == o for o in options):
            return False
    return True
