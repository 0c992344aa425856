"""Helpers shared by the benchmarks: process figures from /proc and goal lines.

Every goal line names the figure, the peer it is compared with (measured in the same run), and
says "met" or "NOT met" for the floor and for the goal, so a reader never has to do the sums.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

__all__ = [
    "cpu_seconds",
    "free_port",
    "goal",
    "goal_line",
    "loadavg",
    "peak_rss_mb",
    "rss_mb",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_mb(pid: int, field: str) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"{field}:\s+(\d+) kB", text)
    return round(int(match.group(1)) / 1024, 1) if match else None


def rss_mb(pid: int) -> float | None:
    """Resident memory now (VmRSS)."""
    return _status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int) -> float | None:
    """The highest resident memory the process has had (VmHWM)."""
    return _status_mb(pid, "VmHWM")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def goal(
    name: str,
    value: float | None,
    *,
    floor: float,
    target: float,
    higher_is_better: bool,
    unit: str = "",
    peer: str = "",
) -> dict[str, Any]:
    """A goal row: the value, its floor and goal, and whether each is met (None: not measured)."""

    def ok(limit: float) -> bool | None:
        if value is None:
            return None
        return value >= limit if higher_is_better else value <= limit

    return {
        "name": name,
        "value": value,
        "unit": unit,
        "peer": peer,
        "floor": floor,
        "goal": target,
        "higher_is_better": higher_is_better,
        "floor_met": ok(floor),
        "goal_met": ok(target),
    }


def _word(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "NOT met")


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.0%}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:g} {unit}".strip()


def goal_line(row: dict[str, Any]) -> str:
    """``- name: **value** (peer) - floor X: met; goal Y: NOT met``."""
    sign = ">=" if row["higher_is_better"] else "<="
    unit = row["unit"]
    shown = "not measured" if row["value"] is None else _fmt(row["value"], unit)
    peer = f" ({row['peer']})" if row["peer"] else ""
    return (
        f"- {row['name']}: **{shown}**{peer} - floor {sign} {_fmt(row['floor'], unit)}: "
        f"{_word(row['floor_met'])}; goal {sign} {_fmt(row['goal'], unit)}: "
        f"{_word(row['goal_met'])}"
    )
