"""The API's exceptions and the one place that turns every error into an HTTP response.

Every error response has the same JSON shape::

    {"error": {"code": "not_found", "message": "no agent with id ...", "details": ...}}

``code`` is a stable machine-readable word, ``message`` a sentence for people that names the
field and the problem, ``details`` extra structure (for validation errors, one entry per
problem: ``{"field": "body.events[0].event_type", "problem": "Field required", "type": ...}``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import asyncpg
from cesar_core.errors import (
    CesarError,
    DatabaseError,
    DatabaseUnavailable,
    InvalidJobState,
    InvalidPayload,
    JobNotFound,
    RedisUnavailable,
    SerializationFailure,
    UnknownJobType,
)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "ApiError",
    "Conflict",
    "ErrorBody",
    "ErrorResponse",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "QueryTimeout",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "error_body",
    "install_error_handlers",
    "translate_db_error",
]

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The shape of every 4xx and 5xx response."""

    error: ErrorBody


class ApiError(Exception):
    """Root of the API's own exceptions; each carries its HTTP status and error code."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers


class InvalidInput(ApiError):
    status_code = 422
    code = "invalid_input"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(
            message, details={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)}
        )


class ServiceUnavailable(ApiError):
    status_code = 503
    code = "service_unavailable"


class QueryTimeout(ApiError):
    """A statement ran past ``API_STATEMENT_TIMEOUT_MS`` and the database cancelled it."""

    status_code = 503
    code = "query_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "5"})


# cesar-core errors -> (status, code); the most specific class wins (checked in order)
_CORE_ERRORS: tuple[tuple[type[CesarError], int, str], ...] = (
    (JobNotFound, 404, "not_found"),
    (InvalidJobState, 409, "invalid_state"),
    (InvalidPayload, 422, "invalid_payload"),
    (UnknownJobType, 422, "unknown_job_type"),
    (DatabaseUnavailable, 503, "database_unavailable"),
    (SerializationFailure, 503, "database_busy"),
    (RedisUnavailable, 503, "redis_unavailable"),
    (DatabaseError, 503, "database_error"),
)

# SQLSTATEs of a database that cannot serve us right now
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
_UNAVAILABLE_SQLSTATES = {"55000", "3D000", "28000", "28P01"}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def translate_db_error(exc: BaseException) -> ApiError | CesarError:
    """Map a driver exception to the API's tree (used at the repository boundary)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        detail = getattr(exc, "detail", None)
        text = str(exc) + (f" ({detail})" if detail else "")
        if state == "23505":
            return _duplicate(exc, detail)
        if state[:2] in {"22", "23"}:  # data exceptions and integrity violations
            return InvalidInput(f"rejected by the database: {text}")
        if state in {"54000", "54001"}:
            return InvalidInput(f"value too large: {text}")
        if state == "57014":  # query_canceled: our statement timeout, or an operator
            return QueryTimeout(
                "the query took longer than the API's statement timeout and was cancelled; "
                "narrow it (status, job_type, created_after/created_before, a smaller limit) "
                "or try again later"
            )
        if state in {"40001", "40P01"}:
            return SerializationFailure(f"transaction conflict: {text}")
        if state[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or state in _UNAVAILABLE_SQLSTATES:
            return DatabaseUnavailable(f"database unavailable: {text}")
        return DatabaseError(f"database error {state}: {text}")
    return DatabaseUnavailable(f"database connection failed: {exc or type(exc).__name__}")


# "Key (name)=(planner-1) already exists." on PostgreSQL and CockroachDB alike; non-greedy up
# to ")=(" so an expression index such as lower(name) keeps its own parentheses
_DUPLICATE_KEY = re.compile(r"Key \((?P<fields>.+?)\)=\(")


def _duplicate(exc: asyncpg.PostgresError, detail: str | None) -> Conflict:
    """A unique violation said the API's way, ``field: problem``: the database's own text
    names constraints and SQL the caller never sees, so it stays in the log only."""
    table = getattr(exc, "table_name", None) or "the table"
    match = _DUPLICATE_KEY.search(detail or "")
    if match is None:
        log.info("unique violation without a key detail: %s", exc)
        return Conflict(f"already exists: a row of {table} with the same unique value exists")
    fields = match.group("fields")
    return Conflict(
        f"{fields}: already exists in {table}; it must be unique",
        details=[{"field": fields, "problem": "already exists"}],
    )


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "request"


def _validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    details = []
    for err in errors:
        loc = err.get("loc", ()) if isinstance(err, dict) else ()
        msg = err.get("msg", str(err)) if isinstance(err, dict) else str(err)
        details.append(
            {"field": _loc(loc), "problem": msg, "type": err.get("type", "value_error")}
            if isinstance(err, dict)
            else {"field": "request", "problem": msg, "type": "value_error"}
        )
    return details


def _json_error(errors: Sequence[Any]) -> str | None:
    """FastAPI reports a body that does not parse as JSON among the validation errors
    (type ``json_invalid``); this is its message, or None when the body parsed."""
    for err in errors:
        if isinstance(err, dict) and err.get("type") == "json_invalid":
            loc = err.get("loc", ())
            reason = (err.get("ctx") or {}).get("error") or "cannot be parsed"
            where = f" at position {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
            return f"the body is not valid JSON: {reason}{where}"
    return None


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "service_unavailable",
}


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _core_error(request: Request, exc: Exception) -> JSONResponse:
    cause = exc.__cause__
    if isinstance(exc, DatabaseError) and isinstance(cause, asyncpg.PostgresError):
        mapped = translate_db_error(cause)  # e.g. the job queue's wrapped driver errors
        if isinstance(mapped, ApiError):
            return await _api_error(request, mapped)
        exc = mapped
    for cls, status, code in _CORE_ERRORS:
        if isinstance(exc, cls):
            if status >= 500:
                log.warning("dependency failure: %s", exc)
            headers = {"Retry-After": "5"} if status == 503 else None
            return _response(status, code, str(exc), headers=headers)
    log.error("unexpected cesar error: %s", exc, exc_info=exc)
    return _response(500, "internal_error", "internal error")


async def _driver_error(request: Request, exc: Exception) -> JSONResponse:
    mapped = translate_db_error(exc)
    if isinstance(mapped, ApiError):
        return await _api_error(request, mapped)
    return await _core_error(request, mapped)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    unparseable = _json_error(exc.errors())
    if unparseable is not None:  # not JSON at all: a bad request, not invalid input
        return _response(
            400, "bad_request", unparseable, [{"field": "body", "problem": unparseable}]
        )
    details = _validation_details(exc.errors())
    message = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:10])
    return _response(422, "invalid_input", message or "invalid input", details)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = dict(exc.headers) if exc.headers else None
    return _response(exc.status_code, code, message, headers=headers)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", exc, exc_info=exc)
    return _response(500, "internal_error", "internal error; see the API log")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: the API tree, cesar-core's tree, driver errors, validation."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(CesarError, _core_error)
    app.add_exception_handler(asyncpg.PostgresError, _driver_error)
    app.add_exception_handler(asyncpg.InterfaceError, _driver_error)
    app.add_exception_handler(OSError, _driver_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
