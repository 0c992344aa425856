"""Values made storable before they reach the database.

One unstorable value in a batched statement fails the whole statement, so every result and
error text a job produces passes through here first:

- NaN and +/-Infinity (JSONB refuses them) become the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``;
- lone surrogates (UTF-8 cannot encode them) and U+0000 (PostgreSQL refuses it in TEXT and
  JSONB) become U+FFFD;
- anything ``json`` cannot encode becomes its ``str()``; a value that cannot even be turned
  into text (a circular structure, a failing ``__str__``) raises :class:`UnstorableValue`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel

__all__ = ["UnstorableValue", "storable_json", "storable_text"]

_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_MAX_DEPTH = 200


class UnstorableValue(ValueError):
    """A value that cannot be made into JSON at all."""


def storable_text(text: str) -> str:
    return _BAD_CHARS.sub("\ufffd", text)


def _clean(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise UnstorableValue(f"nested deeper than {_MAX_DEPTH} levels (or circular)")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, BaseModel):
        return _clean(value.model_dump(mode="json"), depth + 1)
    if isinstance(value, dict):
        return {storable_text(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return storable_text(str(value))


def storable_json(value: Any) -> str:
    """``value`` as JSON text that PostgreSQL and CockroachDB accept in a JSONB column."""
    try:
        return json.dumps(_clean(value, 0), allow_nan=False, ensure_ascii=False)
    except UnstorableValue:
        raise
    except Exception as exc:  # a __str__ or model_dump that raises
        raise UnstorableValue(f"{type(exc).__name__}: {exc}") from exc
