"""Static checks of the one Dockerfile every Python service is built from: pinned uv, cached
locked installs of the package named by the SERVICE build argument, multi-stage, non-root, one
target per service with its command, and every path it copies exists in the build context (the
repository root) for every service."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVICES = ("api", "worker", "migrator", "dashboard", "ollama-proxy")
BASE_IMAGE = "python:3.11-slim"
UV_IMAGE = re.compile(r"^ghcr\.io/astral-sh/uv:(?P<version>\d+\.\d+\.\d+)$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split()), start))
        buffer = ""
    assert not buffer, f"{path}: dangling line continuation"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def package_name(repo: Path, service: str) -> str:
    data = tomllib.loads((repo / "services" / service / "pyproject.toml").read_text())
    name = data["project"]["name"]
    assert isinstance(name, str)
    return name


def scripts_of(repo: Path, service: str) -> set[str]:
    data = tomllib.loads((repo / "services" / service / "pyproject.toml").read_text())
    return set(data["project"].get("scripts", {}))


def for_service(instructions: list[Instruction], service: str) -> list[Instruction]:
    """The stages a `--target <service> --build-arg SERVICE=<service>` build runs, with the
    argument substituted: the shared stages, then the service's own target (and nobody else's)."""
    result: list[Instruction] = []
    for stage in stages(instructions):
        name = stage[0].args.split(" AS ")[-1] if " AS " in stage[0].args else ""
        if name in SERVICES and name != service:
            continue
        for i in stage:
            args = i.args.replace("${SERVICE}", service).replace("$SERVICE", service)
            result.append(Instruction(i.keyword, args, i.line))
    return result


@pytest.fixture(scope="module", params=SERVICES)
def service(request: pytest.FixtureRequest) -> str:
    value = request.param
    assert isinstance(value, str)
    return value


@pytest.fixture(scope="module")
def dockerfile(repo: Path, service: str) -> list[Instruction]:
    path = repo / "Dockerfile"
    assert path.is_file(), f"{path} is missing"
    return for_service(parse(path), service)


def test_one_dockerfile_serves_every_service(repo: Path) -> None:
    assert not sorted(repo.glob("services/*/Dockerfile")), "per-service Dockerfiles are back"
    instructions = parse(repo / "Dockerfile")
    targets = [s[0].args.split(" AS ")[-1] for s in stages(instructions) if " AS " in s[0].args]
    assert set(SERVICES) <= set(targets), f"missing targets: {set(SERVICES) - set(targets)}"
    assert any(i.keyword == "ARG" and i.args == "SERVICE" for i in instructions)


def test_is_multi_stage_on_python_slim(dockerfile: list[Instruction]) -> None:
    froms = [i.args.split()[0] for i in dockerfile if i.keyword == "FROM"]
    assert len(froms) >= 2, "expected a builder stage and a slim final stage"
    # A service's target builds on the `runtime` stage, which is python:3.11-slim.
    assert all(f in (BASE_IMAGE, "runtime") for f in froms), froms
    assert froms[0] == BASE_IMAGE


def test_uv_is_pinned_and_only_in_the_builder(dockerfile: list[Instruction]) -> None:
    *builders, final = stages(dockerfile)
    uv_copies = [
        i for stage in builders for i in stage if i.keyword == "COPY" and "astral-sh/uv" in i.args
    ]
    assert uv_copies, "uv is not copied from ghcr.io/astral-sh/uv"
    for copy in uv_copies:
        source = re.search(r"--from=(\S+)", copy.args)
        assert source and UV_IMAGE.match(source.group(1)), f"uv not pinned: {copy.args}"
    assert not any("astral-sh/uv" in i.args or "uv sync" in i.args for i in final), (
        "the final stage must not carry uv"
    )


def test_dependencies_install_first_from_the_lock_with_a_cache(
    repo: Path, service: str, dockerfile: list[Instruction]
) -> None:
    package = package_name(repo, service)
    runs = [i for i in dockerfile if i.keyword == "RUN" and "uv sync" in i.args]
    assert len(runs) == 2, "expected two uv sync steps: dependencies, then the workspace code"
    deps, code = runs
    for run in runs:
        assert "--mount=type=cache,target=/root/.cache/uv" in run.args, run.args
        assert "--locked" in run.args and "--no-dev" in run.args, run.args
        assert f"--package {package}" in run.args, run.args
    assert "--no-install-workspace" in deps.args
    assert "--mount=type=bind,source=uv.lock,target=uv.lock" in deps.args
    assert "--mount=type=bind,source=pyproject.toml,target=pyproject.toml" in deps.args
    assert "--no-install-workspace" not in code.args
    # Nothing but the bind mounts may exist before the dependency layer.
    first_copy_of_code = min(
        i.line for i in dockerfile if i.keyword == "COPY" and "--from" not in i.args
    )
    assert deps.line < first_copy_of_code, "sources are copied before the dependency layer"


def test_every_copied_or_mounted_path_exists(repo: Path, dockerfile: list[Instruction]) -> None:
    for instruction in dockerfile:
        if instruction.keyword == "COPY" and "--from" not in instruction.args:
            *sources, _target = [a for a in instruction.args.split() if not a.startswith("--")]
            for source in sources:
                assert (repo / source).exists(), f"COPY {source}: not in the build context"
        if instruction.keyword == "RUN":
            for source in re.findall(r"--mount=type=bind,source=([^,\s]+)", instruction.args):
                assert (repo / source).exists(), f"bind mount {source}: not in the build context"


def test_final_stage_runs_as_an_unprivileged_user(dockerfile: list[Instruction]) -> None:
    final = [i for stage in stages(dockerfile)[1:] for i in stage]
    users = [i.args for i in final if i.keyword == "USER"]
    assert users, "the final stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"runs as {users[-1]}"


def test_final_stage_has_the_venv_on_path_and_a_command(
    repo: Path, service: str, dockerfile: list[Instruction]
) -> None:
    final = [i for stage in stages(dockerfile)[1:] for i in stage]
    assert any(i.keyword == "COPY" and "/app/.venv" in i.args for i in final)
    assert any(i.keyword == "ENV" and "PATH=/app/.venv/bin:$PATH" in i.args for i in final)
    commands = [i.args for i in final if i.keyword == "CMD"]
    assert commands, "no CMD"
    first_word = re.findall(r'"([^"]+)"', commands[-1])[0]
    if first_word != "sh":
        assert first_word in scripts_of(repo, service), f"{first_word} is not a declared script"


def test_migrator_image_carries_the_migrations(repo: Path) -> None:
    final = stages(for_service(parse(repo / "Dockerfile"), "migrator"))[-1]
    assert any(i.keyword == "COPY" and i.args == "migrations /app/migrations" for i in final)
    assert any(i.keyword == "ENV" and "MIGRATIONS_DIR=/app/migrations" in i.args for i in final)


def test_compose_commands_are_declared_scripts(repo: Path, tools: Any) -> None:
    services = tools.Model((tools.base_file,)).services
    for name in ("api", "worker", "dashboard", "ollama-proxy"):
        command = services[name]["command"]
        assert command[0] in scripts_of(repo, name), f"{name}: {command[0]} is not declared"
    assert "cesar-migrate" in scripts_of(repo, "migrator")


def test_dockerignore_keeps_local_state_out(repo: Path) -> None:
    ignored = set((repo / ".dockerignore").read_text().split())
    assert {".venv", ".env", ".git"} <= ignored


def test_parser_handles_continuations_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM a AS b\n# note\nRUN one \\\n    # inner comment\n    two\nUSER 1:1\n")
    parsed = parse(path)
    assert [(i.keyword, i.args) for i in parsed] == [
        ("FROM", "a AS b"),
        ("RUN", "one two"),
        ("USER", "1:1"),
    ]
