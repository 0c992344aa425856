"""``cesar-api``: the API in one uvicorn process on API_HOST:API_PORT."""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any

import uvicorn
from cesar_core.alerts import install_alert_handler
from cesar_core.errors import ConfigurationError
from cesar_core.logging import configure_logging

from cesar_api.app import create_app
from cesar_api.settings import ApiSettings, load_api_settings

__all__ = ["main", "proxy_options", "run", "server_stack"]

log = logging.getLogger(__name__)


def server_stack() -> tuple[str, str]:
    """uvicorn's (loop, http) choice, said out loud: uvloop and httptools (both part of
    ``uvicorn[standard]``), falling back to asyncio and h11 only where they are missing."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def proxy_options(settings: ApiSettings) -> dict[str, Any]:
    """Whose ``X-Forwarded-For`` uvicorn believes: only ``FORWARDED_ALLOW_IPS``, said
    explicitly. uvicorn's own default believes loopback, so any local client could name its
    own address and pick its rate-limit bucket; with the setting empty (the default) the
    client address is always the TCP peer."""
    trusted = settings.forwarded_allow_list
    if not trusted:
        return {"proxy_headers": False, "forwarded_allow_ips": []}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def run(settings: ApiSettings) -> None:
    configure_logging(
        "api",
        level=settings.log_level,
        json_lines=settings.log_json,
        secrets=[s.get_secret_value() for s in settings.secret_fields().values()],
    )
    install_alert_handler("api", settings.require_database_url())
    app = create_app(settings)
    loop, http = server_stack()
    log.info("uvicorn with loop=%s http=%s", loop, http)
    uvicorn.run(
        app,
        loop=loop,
        http=http,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=settings.uvicorn_access_log,
        ws_max_size=settings.ws_max_message_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=10,
        server_header=False,
        **proxy_options(settings),
    )


def main() -> None:
    try:
        settings = load_api_settings()
        settings.require_database_url()
    except ConfigurationError as exc:
        print(f"cesar-api: {exc}", file=sys.stderr)
        sys.exit(2)
    run(settings)


if __name__ == "__main__":
    main()
