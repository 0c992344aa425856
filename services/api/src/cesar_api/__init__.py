"""CESAR API: health, metrics, data, jobs, workflows, live events"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["SERVICE_NAME", "__version__"]

SERVICE_NAME = "multi-agent-learning-api"

try:
    __version__ = version("cesar-api")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
