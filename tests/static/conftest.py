"""Shared loading for the static checks: compose files read the way Docker Compose reads them.

Compose parses the YAML (anchors and ``<<`` merge keys included), then interpolates ``${...}``
in every string value, then merges override files into the base file. :class:`ComposeModel`
does the same with plain Python so the checks run without a Docker engine.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

BASE_FILE = "compose.yaml"
OVERRIDE_FILES = (
    "compose.secure.yaml",
    "compose.cluster.yaml",
    "compose.gpu.yaml",
    "compose.redis-port.yaml",
)
TEST_FILE = "compose.test.yaml"
ALL_COMPOSE_FILES = (BASE_FILE, *OVERRIDE_FILES, TEST_FILE)

# $$ (a literal $), ${NAME}, ${NAME<op>arg} with op in :- - :? ? :+ +, and bare $NAME.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Variable:
    """One ``${...}`` reference found in a compose file."""

    name: str
    op: str | None
    arg: str | None
    where: str

    @property
    def required(self) -> bool:
        return self.op in (":?", "?")


def interpolate(value: Any, env: Mapping[str, str], found: list[Variable], where: str = "") -> Any:
    """Compose-style interpolation of every string in ``value``; records each reference."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, found, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, found, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        found.append(Variable(name, op, arg, where))
        current = env.get(name)
        if op == ":-":
            return current if current else (arg or "")
        if op == "-":
            return current if current is not None else (arg or "")
        if op in (":?", "?"):
            if current is None or (op == ":?" and not current):
                raise KeyError(f"required variable {name} is not set ({where}): {arg}")
            return current
        if op == ":+":
            return (arg or "") if current else ""
        if op == "+":
            return (arg or "") if current is not None else ""
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def load_raw(name: str) -> dict[str, Any]:
    data = yaml.safe_load((REPO / name).read_text())
    assert isinstance(data, dict), f"{name} is not a YAML mapping"
    return data


def variables_in(name: str) -> list[Variable]:
    """Every ``${...}`` reference in the file, in document order."""
    found: list[Variable] = []
    _collect(load_raw(name), found)
    return found


def _collect(value: Any, found: list[Variable], where: str = "") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _collect(v, found, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _collect(v, found, f"{where}[{i}]")
    elif isinstance(value, str):
        for m in _INTERPOLATION.finditer(value):
            name = m.group("braced") or m.group("bare")
            if name:
                found.append(Variable(name, m.group("op"), m.group("arg"), where))


def load_interpolated(name: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The file after interpolation; required variables get a dummy value unless given."""
    raw = load_raw(name)
    given = dict(env or {})
    refs: list[Variable] = []
    _collect(raw, refs)
    for ref in refs:
        if ref.required and ref.name not in given:
            given[ref.name] = f"dummy-{ref.name.lower()}"
    result = interpolate(raw, given, [])
    assert isinstance(result, dict)
    return result


def _merge(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge rules, as far as these files use them: mappings merge recursively;
    ``command``/``entrypoint``/``healthcheck.test`` are replaced; ports/volumes/env_file lists
    are appended (volumes and ports by target, roughly); other lists are replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, v in override.items():
            merged[k] = _merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        if key in ("ports", "volumes", "env_file", "profiles", "dns", "extra_hosts"):
            return [*base, *[v for v in override if v not in base]]
        return copy.deepcopy(override)
    return copy.deepcopy(override)


@dataclass
class ComposeModel:
    files: tuple[str, ...]
    data: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        merged: dict[str, Any] = {}
        for name in self.files:
            merged = _merge(merged, load_interpolated(name))
        self.data = merged

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        services = self.data.get("services", {})
        assert isinstance(services, dict)
        return services

    def depends_on(self, service: str) -> dict[str, str]:
        """``depends_on`` as {dependency: condition} (short syntax means service_started)."""
        deps = self.services[service].get("depends_on") or {}
        if isinstance(deps, list):
            return {d: "service_started" for d in deps}
        return {d: (spec or {}).get("condition", "service_started") for d, spec in deps.items()}


class ComposeTools:
    """What the test modules use (they cannot import this conftest under importlib mode)."""

    repo = REPO
    base_file = BASE_FILE
    override_files = OVERRIDE_FILES
    test_file = TEST_FILE
    all_files = ALL_COMPOSE_FILES
    Model = ComposeModel
    load_raw = staticmethod(load_raw)
    load_interpolated = staticmethod(load_interpolated)
    variables_in = staticmethod(variables_in)
    interpolate = staticmethod(interpolate)


@pytest.fixture(scope="session")
def tools() -> type[ComposeTools]:
    return ComposeTools


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def base_model() -> ComposeModel:
    return ComposeModel((BASE_FILE,))
