"""/api/v1/events: batch ingest, filtered cursor listing, and the live WebSocket stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from cesar_core.errors import CesarError, RedisUnavailable
from cesar_core.events import publish_events
from fastapi import APIRouter, Query, WebSocket, status
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketDisconnect, WebSocketState

from cesar_api.database import read, write
from cesar_api.deps import DbDep, MetricsDep, ReadKey, RedisDep, SettingsDep, WriteKey
from cesar_api.errors import ApiError, InvalidInput
from cesar_api.event_hub import PING, EventClient, event_message
from cesar_api.pagination import Page, decode_cursor, next_cursor
from cesar_api.repositories import agents as agents_repo
from cesar_api.repositories import events as repo
from cesar_api.resources import Resources
from cesar_api.schemas import Cursor, Limit, Name, StrictModel, Timestamp

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/events", tags=["events"])
log = logging.getLogger(__name__)

Severity = Literal["debug", "info", "warning", "error", "critical"]
Label = Annotated[str, Field(max_length=200)]


class EventIn(StrictModel):
    agent_id: UUID | None = None
    event_type: Name
    payload: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = "info"
    source: Label | None = None
    correlation_id: Label | None = None
    occurred_at: Timestamp | None = Field(
        default=None, description="when it happened (with a time zone); default: now"
    )


class EventBatch(StrictModel):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventOut(BaseModel):
    id: UUID
    agent_id: UUID | None
    event_type: str
    payload: dict[str, Any]
    severity: str
    source: str | None
    correlation_id: str | None
    occurred_at: datetime
    created_at: datetime


class IngestResult(BaseModel):
    count: int
    ids: list[UUID]
    published: bool = Field(
        description="false when Redis was down: the events are stored, not streamed live"
    )


class EventPage(Page):
    items: list[EventOut]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=IngestResult)
async def ingest_events(
    body: EventBatch,
    db: DbDep,
    redis: RedisDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    _key: WriteKey,
) -> IngestResult:
    """Store a batch in ``agent_events`` (all or nothing), then publish it to the live stream."""
    events = [e.model_dump() for e in body.events]
    wanted = sorted({e["agent_id"] for e in events if e["agent_id"] is not None})

    async def work(conn: Any) -> list[dict[str, Any]]:
        if wanted:
            known = await agents_repo.exists_many(conn, wanted)
            missing = [
                {
                    "field": f"body.events[{i}].agent_id",
                    "problem": f"no agent with id {e['agent_id']}",
                }
                for i, e in enumerate(events)
                if e["agent_id"] is not None and e["agent_id"] not in known
            ]
            if missing:
                raise InvalidInput(
                    "; ".join(f"{m['field']}: {m['problem']}" for m in missing[:5]),
                    details=missing,
                )
        return await repo.insert_many(conn, events)

    rows = await write(db, work)
    out = [EventOut.model_validate(r) for r in rows]
    published = True
    try:
        await publish_events(
            redis, [e.model_dump(mode="json") for e in out], stream=settings.event_stream
        )
        metrics.events_published.inc(len(out))
    except RedisUnavailable as exc:
        published = False
        log.warning("stored %d events but could not publish them: %s", len(out), exc)
    return IngestResult(count=len(out), ids=[e.id for e in out], published=published)


@router.get("", response_model=EventPage)
async def list_events(
    db: DbDep,
    settings: SettingsDep,
    _key: ReadKey,
    agent_id: UUID | None = None,
    event_type: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[Timestamp | None, Query(description="occurred_at >= since")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EventPage:
    """Events, newest first. A page ends early (with a ``next_cursor``) before its payloads
    pass ``API_MAX_PAGE_BYTES``."""
    before = decode_cursor(cursor)
    page = await read(
        db,
        lambda conn: repo.list_events(
            conn,
            agent_id=agent_id,
            event_type=event_type,
            since=since,
            before=before,
            limit=limit,
            max_bytes=settings.max_page_bytes,
        ),
    )
    rows = page.rows
    cursor_limit = len(rows) if page.truncated else limit  # cut short: there is more
    return EventPage(
        items=[EventOut.model_validate(r) for r in rows],
        next_cursor=next_cursor(rows, cursor_limit),
    )


# -- the live stream -----------------------------------------------------------------------------

_POLICY = 1008
_TRY_LATER = 1013
_UNKNOWN_EVENT = 4404
_INTERNAL = 1011


def _text(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, default=str)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.client_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2.0):
            await ws.close(code=code, reason=reason[:120])


async def _refuse_input(ws: WebSocket, message: str) -> None:
    """Accept only to say what is wrong: a close before the handshake reaches a client as a
    bare 403 without any reason."""
    await ws.accept()
    await ws.send_text(_text("error", error={"code": "invalid_input", "message": message}))
    await _close(ws, _POLICY, message)


async def _first_message(ws: WebSocket, wait: float) -> dict[str, Any]:
    """The optional first message (``{"last_event_id": ...}``, ``{"api_key": ...}``) if it
    comes within ``wait``; ``{}`` when none came or it is not a JSON object."""
    if wait <= 0:
        return {}
    try:
        async with asyncio.timeout(wait):
            message = await ws.receive()
    except TimeoutError:
        return {}
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    try:
        data = json.loads(message.get("text") or message.get("bytes") or "null")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _text_field(message: dict[str, Any], name: str) -> str | None:
    value = message.get(name)
    return value if isinstance(value, str) else None


async def _refuse(ws: WebSocket, code: int, error: str, message: str) -> None:
    """Accept only to say why, then close: a refusal before the handshake completes reaches
    the client as a bare HTTP 403, with neither the code nor the reason."""
    with contextlib.suppress(Exception):
        if ws.application_state == WebSocketState.CONNECTING:
            await ws.accept()
        await ws.send_text(_text("error", error={"code": error, "message": message}))
    await _close(ws, code, message)


def _bearer(ws: WebSocket) -> str:
    header = ws.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


async def _authenticate(ws: WebSocket, resources: Resources) -> dict[str, Any] | None:
    """When reads need a key: the key from ``Authorization: Bearer`` or the first message
    ``{"api_key": "..."}``. Returns the first message read (``{}`` if none), or None after
    refusing the socket."""
    secret = _bearer(ws)
    first: dict[str, Any] = {}
    if not secret:
        first = await _first_message(ws, resources.settings.ws_auth_timeout)
        secret = _text_field(first, "api_key") or ""
    if not secret:
        await _refuse(
            ws,
            _POLICY,
            "unauthorized",
            "reads need an API key here: send Authorization: Bearer <key>, or the first "
            'message {"api_key": "<key>"} within '
            f"{resources.settings.ws_auth_timeout:g}s",
        )
        return None
    try:
        principal = await resources.keys.authenticate(resources.db(), secret)
        resources.keys.require_scope(principal, "read")
    except (ApiError, CesarError) as exc:
        code = exc.code if isinstance(exc, ApiError) else "service_unavailable"
        await _refuse(ws, _POLICY, code, str(exc))
        return None
    return first


Position = tuple[datetime, UUID]


@dataclass
class _Replayed:
    """What a resumed client already has: the replayed ids, and everything stored at or
    before ``horizon`` (the newest replayed event, else the resume point)."""

    ids: set[str]
    horizon: Position | None


async def _replay(
    ws: WebSocket, resources: Resources, client: EventClient, last_event_id: str
) -> _Replayed | None:
    """Send the stored events after ``last_event_id`` (None: the socket was closed)."""
    try:
        event_id = UUID(last_event_id)
    except ValueError:
        await ws.send_text(
            _text("error", error={"code": "invalid_input", "message": "last_event_id: not a UUID"})
        )
        await _close(ws, _POLICY, "last_event_id is not a UUID")
        return None
    settings = resources.settings
    try:
        db = resources.db()
        position = await read(db, lambda conn: repo.position_of(conn, event_id))
        rows = (
            await read(
                db,
                lambda conn: repo.replay_after(
                    conn,
                    position,
                    agent_id=UUID(client.agent_id) if client.agent_id else None,
                    event_type=client.event_type,
                    limit=settings.ws_replay_limit,
                ),
            )
            if position
            else None
        )
    except (ApiError, CesarError) as exc:
        await ws.send_text(
            _text("error", error={"code": "service_unavailable", "message": str(exc)})
        )
        await _close(ws, _INTERNAL, "database unavailable for replay")
        return None
    if rows is None:
        await ws.send_text(
            _text(
                "error",
                error={
                    "code": "unknown_event_id",
                    "message": f"last_event_id {event_id} is not (or no longer) stored; "
                    "reconnect without it and reload with GET /api/v1/events",
                },
            )
        )
        await _close(ws, _UNKNOWN_EVENT, "unknown last_event_id")
        return None
    sent: set[str] = set()
    for row in rows:
        event = EventOut.model_validate(row).model_dump(mode="json")
        await ws.send_text(event_message(event, stream_id=None, replayed=True))
        sent.add(event["id"])
    await ws.send_text(
        _text("replay_done", count=len(rows), truncated=len(rows) >= settings.ws_replay_limit)
    )
    horizon = (rows[-1]["created_at"], rows[-1]["id"]) if rows else position
    return _Replayed(sent, horizon)


def _stored_by(text: str, horizon: Position) -> bool:
    """Whether a live event was stored at or before ``horizon``, so the client has it (or
    asked to start after it). Events published before the client registered can still be
    on their way through the hub when the replay ends."""
    try:
        event = json.loads(text)["event"]
        position = (datetime.fromisoformat(event["created_at"]), UUID(event["id"]))
    except (KeyError, TypeError, ValueError):
        return False
    return position <= horizon


async def _sender(ws: WebSocket, client: EventClient, had: _Replayed) -> None:
    clock = asyncio.get_running_loop().time
    while True:
        item = await client.queue.get()
        client.last_sent = clock()
        if item is PING:  # idle for a ping interval (the hub's one timer decides)
            await ws.send_text(_text("ping", ts=datetime.now(UTC).isoformat()))
            continue
        event_id, text = item
        if event_id in had.ids:
            had.ids.discard(event_id)  # already sent by the replay
            continue
        if had.horizon is not None:
            if _stored_by(text, had.horizon):
                continue
            had.horizon = None  # the first newer event: the live stream has caught up
        await ws.send_text(text)


async def _receiver(ws: WebSocket) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


@router.websocket("/stream")
async def event_stream(
    ws: WebSocket,
    agent_id: str | None = None,
    event_type: str | None = None,
    last_event_id: str | None = None,
    api_key: str | None = None,
) -> None:
    """Live agent events. Query: ``agent_id``, ``event_type`` (filters), ``last_event_id``
    (resume: stored events after it are replayed first; also accepted as the ``Last-Event-ID``
    header or a first message ``{"last_event_id": "..."}``). When reads need a key, send it
    as ``Authorization: Bearer <key>`` or in the first message ``{"api_key": "..."}``; never
    in the query (``?api_key=`` is refused: URLs land in access logs). Messages: ``hello``,
    ``event``, ``replay_done``, ``ping``, ``error``. A client that falls behind is closed with
    code 1013, as is an address over ``WS_MAX_PER_ADDRESS`` open streams or ``WS_CONNECT_RATE``
    new ones; a refused key or filter closes with 1008."""
    resources: Resources = ws.app.state.resources
    settings = resources.settings
    if api_key is not None:
        await _refuse(
            ws,
            _POLICY,
            "api_key_in_query",
            "api_key in the URL is refused (URLs land in access logs): send "
            'Authorization: Bearer <key> or a first message {"api_key": "<key>"}',
        )
        return
    if agent_id is not None:
        try:
            agent_id = str(UUID(agent_id))
        except ValueError:
            await _refuse_input(ws, "agent_id: not a UUID")
            return
    if event_type is not None and not 0 < len(event_type) <= 200:
        await _refuse_input(ws, "event_type: 1 to 200 characters")
        return
    address = ws.client.host if ws.client else "unknown"
    if not resources.streams.acquire(address):
        resources.metrics.rate_limited.labels("stream").inc()
        await _refuse(
            ws,
            _TRY_LATER,
            "too_many_streams",
            f"too many open event streams from {address} (at most {settings.ws_max_per_address})",
        )
        return
    try:
        refusal = await resources.limits.acquire("stream", address)
        if refusal is not None:
            resources.metrics.rate_limited.labels("stream").inc()
            await _refuse(
                ws,
                _TRY_LATER,
                "rate_limited",
                f"new event streams from {address} over {refusal.limit}; "
                f"retry in {refusal.retry_after}s",
            )
            return
        await _stream(ws, resources, agent_id, event_type, last_event_id)
    finally:
        resources.streams.release(address)


async def _stream(
    ws: WebSocket,
    resources: Resources,
    agent_id: str | None,
    event_type: str | None,
    last_event_id: str | None,
) -> None:
    settings = resources.settings
    await ws.accept()
    first: dict[str, Any] = {}
    if settings.reads_require_key:
        try:
            authenticated = await _authenticate(ws, resources)
        except WebSocketDisconnect:
            return
        if authenticated is None:
            return
        first = authenticated
    client = resources.hub.register(agent_id, event_type)
    if client is None:
        await _refuse(ws, _TRY_LATER, "too_many_clients", "too many event stream clients")
        return
    tasks: list[asyncio.Task[None]] = []
    try:
        resume = (
            last_event_id or ws.headers.get("last-event-id") or _text_field(first, "last_event_id")
        )
        await ws.send_text(
            _text(
                "hello",
                filters={"agent_id": agent_id, "event_type": event_type},
                server_time=datetime.now(UTC).isoformat(),
            )
        )
        if resume is None and not first:
            resume = _text_field(await _first_message(ws, settings.ws_resume_wait), "last_event_id")
        had = _Replayed(set(), None)
        if resume is not None:
            replayed = await _replay(ws, resources, client, resume)
            if replayed is None:
                return
            had = replayed
        tasks = [
            asyncio.create_task(_sender(ws, client, had)),
            asyncio.create_task(_receiver(ws)),
            asyncio.create_task(client.disconnect.wait()),  # type: ignore[arg-type]
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if client.disconnect.is_set():
            for task in tasks:
                task.cancel()
            await _close(ws, client.close_code, client.close_reason)
    except WebSocketDisconnect:
        pass
    except Exception as exc:  # a send to a vanished client, mostly
        log.debug("event stream client ended: %s", exc)
    finally:
        resources.hub.unregister(client)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await _close(ws, 1000, "bye")
