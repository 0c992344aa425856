"""``cesar-ollama-proxy``: load the settings, configure logging, serve with uvicorn."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from cesar_core.alerts import install_alert_handler
from cesar_core.errors import ConfigurationError
from cesar_core.logging import configure_logging

from cesar_ollama_proxy.app import create_app
from cesar_ollama_proxy.settings import ProxySettings, load_proxy_settings

__all__ = ["main", "proxy_options"]


def proxy_options(settings: ProxySettings) -> dict[str, Any]:
    """Whose ``X-Forwarded-For`` uvicorn believes: only ``FORWARDED_ALLOW_IPS``, said
    explicitly. uvicorn's own default believes loopback, so any local client could name its
    own address and escape the per-address limit; with the setting empty (the default) the
    client address is always the TCP peer."""
    trusted = settings.forwarded_allow_list
    if not trusted:
        return {"proxy_headers": False, "forwarded_allow_ips": []}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def main() -> None:
    try:
        settings = load_proxy_settings()
    except ConfigurationError as exc:
        print(f"cesar-ollama-proxy: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(
        "ollama-proxy",
        level=settings.log_level,
        json_lines=settings.log_json,
        secrets=[s.get_secret_value() for s in settings.secret_fields().values()],
    )
    install_alert_handler(
        "ollama-proxy", settings.database_url.get_secret_value() if settings.database_url else None
    )
    uvicorn.run(
        create_app(settings),
        host=settings.proxy_host,
        port=settings.proxy_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
        # both come with uvicorn[standard]; named so a missing one fails loudly instead of
        # silently falling back to the pure-Python loop and parser
        loop="uvloop",
        http="httptools",
        **proxy_options(settings),
    )


if __name__ == "__main__":
    main()
