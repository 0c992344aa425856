"""`make dev`'s process manager: honcho (Procfile.dev), with two changes this stack needs.

- The environment `make dev` runs in is the one exported in the shell. honcho would read
  `.env` by default and let it override exported variables, and the `.env` made for compose
  (`cp .env.example .env`) names compose hostnames (`redis:6379`, `cockroach:26257`). So no env
  file is read unless DEV_ENV_FILE names one.
- After Ctrl-C honcho sends SIGTERM once to each process group, then SIGKILLs whatever still runs
  5 seconds after the first process exits. The worker's shutdown grace period
  (WORKER_SHUTDOWN_GRACE_SECONDS, 20 s) is longer, so the kill waits for it, plus a margin.

Usage: python scripts/dev_honcho.py [-f Procfile.dev] [honcho start options]
"""

from __future__ import annotations

import os
import sys

import honcho.manager
from honcho.command import main

DEFAULT_GRACE_SECONDS = 20.0
KILL_MARGIN_SECONDS = 5.0


def kill_wait(environ: dict[str, str]) -> float:
    raw = environ.get("WORKER_SHUTDOWN_GRACE_SECONDS", "")
    try:
        grace = float(raw) if raw else DEFAULT_GRACE_SECONDS
    except ValueError:
        grace = DEFAULT_GRACE_SECONDS
    return max(grace, 0.0) + KILL_MARGIN_SECONDS


def honcho_argv(args: list[str], environ: dict[str, str]) -> list[str]:
    env_file = environ.get("DEV_ENV_FILE") or os.devnull
    procfile = ["-f", "Procfile.dev"] if "-f" not in args else []
    return ["-e", env_file, *procfile, "start", *args]


def run(args: list[str]) -> None:
    # honcho reads this module constant each time it decides whether to kill.
    honcho.manager.KILL_WAIT = kill_wait(dict(os.environ))  # type: ignore[attr-defined]
    main(honcho_argv(args, dict(os.environ)))


if __name__ == "__main__":
    run(sys.argv[1:])
