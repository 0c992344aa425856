"""Static checks of the compose files: schema, start order, health, secrets, ports, limits."""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest

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
    "compose.yaml": {"COCKROACH_DB_URL"},
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


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode
    != 0,
    reason="the docker compose plugin is not installed here; the schema tests above cover it",
)
def test_docker_compose_config_accepts_every_combination(tools: Any) -> None:
    env = {
        **os.environ,
        "COCKROACH_DB_URL": "postgresql://root@cockroach:26257/cesar?sslmode=disable",
        "COCKROACH_PASSWORD": "x" * 24,
    }
    for files in (
        ["compose.yaml"],
        ["compose.yaml", "compose.secure.yaml"],
        ["compose.yaml", "compose.cluster.yaml"],
        ["compose.yaml", "compose.gpu.yaml"],
        ["compose.test.yaml"],
    ):
        args = [arg for f in files for arg in ("-f", f)]
        result = subprocess.run(
            ["docker", "compose", *args, "--profile", "monitoring", "config", "-q"],
            cwd=tools.repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{files}: {result.stderr}"


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


def test_our_images_are_built_from_their_dockerfiles(base_model: Any, tools: Any) -> None:
    for name in OUR_IMAGES:
        build = base_model.services[name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == f"services/{name}/Dockerfile"
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
    assert "127.0.0.1:26257:26257" in cockroach["ports"]
    assert "127.0.0.1:6379:6379" in model.services["redis"]["ports"]
    assert not model.data.get("volumes"), "the test stack must not persist anything"


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
