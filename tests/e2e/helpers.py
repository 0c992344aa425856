from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import asyncpg
import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

FINAL = {"succeeded", "failed", "cancelled"}


def wait_final(api: httpx.Client, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            response = api.get(f"/api/v1/jobs/{job_id}")
            if response.status_code == 200:
                job = response.json()
                if job["status"] in FINAL:
                    return job
        except httpx.HTTPError:
            pass  # the API may be briefly unavailable during the fault tests
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not final after {timeout}s: {job}")


def create_template(api: httpx.Client, steps: list[dict[str, Any]]) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    response = api.post(
        "/api/v1/workflows/templates", json={"name": name, "definition": {"steps": steps}}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def execute(api: httpx.Client, template_id: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/api/v1/workflows/templates/{template_id}/execute", json=body)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


class EventListener:
    """A real WebSocket client on /api/v1/events/stream, collecting messages in a thread."""

    def __init__(self, api_url: str, **params: str) -> None:
        query_string = "&".join(f"{k}={v}" for k, v in params.items())
        self.url = api_url.replace("http://", "ws://") + f"/api/v1/events/stream?{query_string}"
        self.messages: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EventListener:
        self._thread.start()
        assert self.ready.wait(15), "event stream did not say hello"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with connect(self.url, open_timeout=10) as ws:
            while not self._stop.is_set():
                try:
                    message = json.loads(ws.recv(timeout=0.2))
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    return
                self.messages.append(message)
                if message.get("type") == "hello":
                    self.ready.set()

    def events(self) -> list[dict[str, Any]]:
        return [m["event"] for m in self.messages if m.get("type") == "event"]

    def wait_for(self, event_type: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event_type") == event_type:
                    return event
            time.sleep(0.1)
        raise AssertionError(f"no {event_type} event on the stream: {self.messages[-5:]}")
