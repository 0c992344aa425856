"""One non-streamed ``/api/generate`` call through the worker's Ollama client (the proxy).

Errors are sorted for the job system: a 4xx that another attempt cannot fix (unknown model,
bad request) is a :class:`PermanentJobError`; an unreachable upstream, a 5xx, 408 or 429 is a
:class:`CesarError`, so the job is retried with backoff.
"""

from __future__ import annotations

from typing import Any

import httpx
from cesar_core.errors import CesarError
from cesar_core.jobs.registry import JobContext, PermanentJobError

__all__ = ["generate"]


async def generate(
    ctx: JobContext,
    *,
    model: str,
    prompt: str,
    system: str | None = None,
    format: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The answer of ``model`` to ``prompt``: Ollama's response object."""
    client = ctx.resources.get("ollama")
    if not isinstance(client, httpx.AsyncClient):
        raise CesarError("no Ollama client configured for this worker")
    body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": False}
    if system:
        body["system"] = system
    if format:
        body["format"] = format
    if options:
        body["options"] = options
    try:
        response = await client.post("/api/generate", json=body)
    except httpx.HTTPError as exc:
        raise CesarError(f"Ollama unreachable: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        message = f"Ollama answered {response.status_code}: {response.text[:300]}"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise PermanentJobError(message)
        raise CesarError(message)
    try:
        data = response.json()
    except ValueError as exc:
        raise CesarError(f"Ollama answered something that is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CesarError("Ollama answered JSON that is not an object")
    return data
