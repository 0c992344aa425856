"""The live event bus: agent events on a Redis Stream, capped in length.

Writers (the API's batch ingest, the worker's ``agent.event`` step) store the rows in
``agent_events`` first and then publish them here; readers (one per API process) fan them
out to WebSocket clients. Each entry's ``data`` field is the event as JSON, with its ``id``
(the ``agent_events`` row id) so a client can resume from the last id it saw.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from redis.exceptions import RedisError

from cesar_core.errors import RedisUnavailable
from cesar_core.redis import RedisClient

__all__ = ["EVENT_STREAM", "EVENT_STREAM_MAXLEN", "publish_events"]

EVENT_STREAM = "cesar:events"
EVENT_STREAM_MAXLEN = 100_000


async def publish_events(
    redis: RedisClient,
    events: Iterable[Mapping[str, Any]],
    *,
    stream: str = EVENT_STREAM,
    maxlen: int = EVENT_STREAM_MAXLEN,
) -> list[str]:
    """XADD every event (approximate MAXLEN cap) in one pipeline; returns the stream ids."""
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(
                    stream,
                    {"data": json.dumps(event, default=str)},
                    maxlen=maxlen,
                    approximate=True,
                )
            ids = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(f"cannot publish events: {exc}") from exc
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
