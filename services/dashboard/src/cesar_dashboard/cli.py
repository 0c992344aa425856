"""``cesar-dashboard [streamlit flags...]``: exec ``streamlit run`` on the dashboard.

Defaults: port 3000 (``DASHBOARD_PORT`` or ``--server.port`` override), headless, listening on
``DASHBOARD_ADDRESS`` (default 0.0.0.0), no usage statistics, no file watcher. Any extra flags
are passed to ``streamlit run`` and win over the defaults. Health: ``GET /_stcore/health``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cesar_core.errors import ConfigurationError

from cesar_dashboard.settings import load_dashboard_settings

__all__ = ["APP_PATH", "command", "main"]

APP_PATH = Path(__file__).resolve().parent / "app.py"


def _defaults() -> dict[str, str]:
    return {
        "--server.port": os.environ.get("DASHBOARD_PORT", "3000"),
        "--server.address": os.environ.get("DASHBOARD_ADDRESS", "0.0.0.0"),
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
        "--server.fileWatcherType": "none",
        "--client.toolbarMode": "minimal",
    }


def command(extra: Sequence[str]) -> list[str]:
    """The argv that runs the dashboard; flags given in ``extra`` replace the defaults."""
    given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    argv = [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    for flag, value in _defaults().items():
        if flag not in given:
            argv += [flag, value]
    return [*argv, *extra]


def main(argv: Sequence[str] | None = None) -> None:
    # refuse to start, with one line saying why, rather than serve pages that only show it
    try:
        load_dashboard_settings()
    except ConfigurationError as exc:
        print(f"cesar-dashboard: {exc}", file=sys.stderr)
        sys.exit(2)
    args = command(sys.argv[1:] if argv is None else argv)
    os.execv(args[0], args)
