from __future__ import annotations

import re

import pytest
from cesar_core.errors import ConfigurationError
from cesar_ollama_proxy.settings import load_proxy_settings


def test_defaults_match_the_documented_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OLLAMA_URL", "PROXY_PORT", "PROXY_HOST", "LOG_PROMPTS", "PROXY_CACHE_MODE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_proxy_settings()
    assert settings.ollama_url == "http://ollama:11434"
    assert (settings.proxy_host, settings.proxy_port) == ("0.0.0.0", 11435)
    assert settings.cache_mode == "deterministic"
    assert settings.log_prompts is False
    assert [str(item) for item in settings.client_limits] == ["600 per 1 minute"]


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_URL", "http://gpu-box:11434/")
    monkeypatch.setenv("PROXY_PORT", "12000")
    monkeypatch.setenv("PROXY_CACHE_TTL_SECONDS", "60")
    monkeypatch.setenv("PROXY_RATE_LIMIT_MODEL", "")
    monkeypatch.setenv("PROXY_MAX_CONCURRENT_UPSTREAM", "2")
    monkeypatch.setenv("LOG_PROMPTS", "true")
    settings = load_proxy_settings()
    assert settings.ollama_url == "http://gpu-box:11434"
    assert settings.proxy_port == 12000
    assert settings.cache_ttl_seconds == 60
    assert settings.model_limits == []
    assert settings.max_concurrent_upstream == 2
    assert settings.log_prompts is True


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("PROXY_RATE_LIMIT_CLIENT", "lots", "not a rate limit"),
        ("PROXY_CACHE_MODE", "sometimes", "PROXY_CACHE_MODE"),
        ("OLLAMA_URL", "ollama:11434", "not an http(s) URL"),
        ("PROXY_PORT", "0", "PROXY_PORT"),
    ],
)
def test_bad_values_are_one_clear_configuration_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=re.escape(says)):
        load_proxy_settings()
