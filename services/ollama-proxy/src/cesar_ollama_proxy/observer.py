"""Reads an answer as it passes (without delaying it) for what metrics and the cache need:
the final chunk's token counts, whether an error line came, whether the answer completed.

NDJSON (Ollama): the last line has ``"done": true`` and ``prompt_eval_count`` /
``eval_count``; an error is a line ``{"error": "..."}``. SSE (``/v1``): ``data: {...}``
events, ``usage`` when the client asked for it, and ``data: [DONE]`` at the end.
Only lines that may matter are parsed as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from cesar_ollama_proxy.routes import StreamFormat

__all__ = ["ResponseObserver"]


def _as_int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class ResponseObserver:
    def __init__(self, stream_format: StreamFormat, *, streamed: bool) -> None:
        self.stream_format = stream_format
        self.streamed = streamed
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.error: str | None = None
        self.done = False
        self._partial = b""

    # -- whole bodies ---------------------------------------------------------------------

    def feed_body(self, body: bytes) -> None:
        """A complete non-streamed JSON answer."""
        try:
            data = json.loads(body)
        except ValueError:
            return
        if isinstance(data, dict):
            self._read_object(data)
            self.done = self.error is None

    # -- streams --------------------------------------------------------------------------

    def feed_chunk(self, chunk: bytes) -> None:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def finish(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    def _line(self, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        if self.stream_format == "sse":
            if not line.startswith(b"data:"):
                return
            line = line[5:].strip()
            if line == b"[DONE]":
                self.done = self.error is None
                return
            if b'"usage"' not in line and b'"error"' not in line:
                return
        elif b'"done"' not in line and b'"error"' not in line:
            return
        try:
            data = json.loads(line)
        except ValueError:
            return
        if isinstance(data, dict):
            self._read_object(data)
            if self.stream_format == "ndjson" and data.get("done") is True:
                self.done = self.error is None

    def _read_object(self, data: dict[str, Any]) -> None:
        error = data.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            self.error = str(message or error)
            self.done = False
            return
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = _as_int(usage.get("prompt_tokens"))
            self.completion_tokens = _as_int(usage.get("completion_tokens"))
            return
        if "prompt_eval_count" in data or "eval_count" in data:
            self.prompt_tokens = _as_int(data.get("prompt_eval_count"))
            self.completion_tokens = _as_int(data.get("eval_count"))
