"""JOB_QUEUE_* values that cannot work are refused at start with a message naming them."""

from __future__ import annotations

import pytest
from cesar_core.errors import ConfigurationError
from cesar_core.jobs.settings import JobSettings
from cesar_core.settings import load_settings


def test_a_lease_shorter_than_three_renewal_periods_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOB_QUEUE_STALL_SECONDS", "8")
    monkeypatch.setenv("JOB_QUEUE_HEARTBEAT_SECONDS", "3")
    with pytest.raises(ConfigurationError, match=r"JOB_QUEUE_STALL_SECONDS.*three times"):
        load_settings(JobSettings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("JOB_QUEUE_RETENTION_DAYS", "0"), ("JOB_QUEUE_UNKNOWN_TYPE_DELAY_SECONDS", "-1")],
)
def test_non_positive_periods_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings(JobSettings)


def test_the_defaults_are_consistent() -> None:
    settings = JobSettings()
    assert settings.job_queue_stall_seconds >= 3 * settings.job_queue_heartbeat_seconds
    assert settings.outage_gap_seconds() == 2 * settings.job_queue_heartbeat_seconds
