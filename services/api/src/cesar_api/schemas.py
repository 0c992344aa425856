"""Shared pieces of the request and response models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar

from fastapi import Query
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: Any) -> Any:
    """Only ISO 8601 text (or a datetime): no epoch numbers sneaking in as timestamps."""
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATE.match(value)):
        return value
    raise ValueError("expected an ISO 8601 date-time with a time zone, e.g. 2024-01-31T12:00:00Z")


# date-time with a zone; numbers are refused
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_only)]
# body numbers and flags: no strings or booleans coerced into them
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]

__all__ = [
    "Count",
    "Cursor",
    "Flag",
    "Limit",
    "Name",
    "NoNullsModel",
    "Number",
    "ShortText",
    "StrictModel",
    "Timestamp",
]

# a non-blank single token of text (names, types, symbols)
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
ShortText = Annotated[str, StringConstraints(max_length=4000)]
Limit = Annotated[int, Query(ge=1, le=500, description="page size (1..500)")]
Cursor = Annotated[
    str | None,
    Query(max_length=400, description="`next_cursor` from the previous page"),
]


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


class NoNullsModel(StrictModel):
    """For PATCH bodies: a field may be left out, but only nullable fields may be null."""

    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None and key in cls.model_fields and key not in cls.nullable_fields:
                    raise ValueError(f"{key}: may be left out but not set to null")
        return data
