"""Test helpers other packages reuse: a fake Ollama server and an in-process uvicorn runner."""

from cesar_ollama_proxy.testing.fake_ollama import FakeConfig, FakeOllama, create_fake_app
from cesar_ollama_proxy.testing.server import free_port, serve_app, wait_until

__all__ = ["FakeConfig", "FakeOllama", "create_fake_app", "free_port", "serve_app", "wait_until"]
