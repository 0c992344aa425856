"""Chart time axes say the time the way the tables next to them do: 24-hour UTC (``%H:%M`` on
a UTC scale), not the browser's local 12-hour clock without AM/PM."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from .test_pages import AGENTS, LLM, SYNC

Seed = Callable[..., Any]
OpenPage = Callable[[str], AppTest]


def chart_specs(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(e.proto.spec) for e in at.get("vega_lite_chart")]


def time_axes(spec: Any) -> list[dict[str, Any]]:
    """Every temporal position encoding (x or y) anywhere in the spec, layers included."""
    found: list[dict[str, Any]] = []
    if isinstance(spec, dict):
        for channel in ("x", "y"):
            enc = (spec.get("encoding") or {}).get(channel)
            if isinstance(enc, dict) and enc.get("type") == "temporal":
                found.append(enc)
        for value in spec.values():
            found += time_axes(value)
    elif isinstance(spec, list):
        for value in spec:
            found += time_axes(value)
    return found


def assert_24_hour_utc(at: AppTest, page: str) -> None:
    axes = [axis for spec in chart_specs(at) for axis in time_axes(spec)]
    assert axes, f"{page} drew no time axis"
    for axis in axes:
        assert (axis.get("scale") or {}).get("type") == "utc", axis
        assert (axis.get("axis") or {}).get("format") == "%H:%M", axis


@pytest.mark.parametrize(
    ("page", "rows"),
    [("sync_lag", SYNC), ("llm", LLM), ("agents", AGENTS)],
)
@pytest.mark.usefixtures("dashboard_env")
async def test_time_axes_are_24_hour_utc(
    open_page: OpenPage, seed: Seed, page: str, rows: str
) -> None:
    await seed(rows)
    assert_24_hour_utc(open_page(page), page)
