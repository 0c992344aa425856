"""Monitoring profile: Prometheus config and alert rules (promtool), Grafana provisioning."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed: run scripts/install-system-deps.sh as root "
    "(Debian package `prometheus`)",
)

METRICS = (
    "cesar_jobs_failed_recent",
    "cesar_sync_lag_seconds",
    "cesar_ingestion_errors",
    "cesar_job_queue_depth",
)
ALERTS = {
    "CesarJobsFailed",
    "CesarJobBacklogGrowing",
    "CesarSyncLagHigh",
    "CesarIngestionErrors",
    "CesarServiceDown",
}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def prometheus_dir(repo: Path) -> Path:
    return repo / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def prometheus_config(prometheus_dir: Path) -> dict[str, Any]:
    data = yaml.safe_load((prometheus_dir / "prometheus.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def alert_rules(prometheus_dir: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load((prometheus_dir / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_config(prometheus_dir: Path) -> None:
    result = promtool("check", "config", "prometheus.yml", cwd=prometheus_dir)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_rules(prometheus_dir: Path) -> None:
    result = promtool("check", "rules", "alerts.yml", cwd=prometheus_dir)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alerts_fire_when_they_should_and_only_then(prometheus_dir: Path) -> None:
    result = promtool("test", "rules", "alerts.test.yml", cwd=prometheus_dir)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(up[\n"
    )
    assert promtool("check", "rules", "bad.yml", cwd=tmp_path).returncode != 0


def test_prometheus_scrapes_api_worker_and_proxy(prometheus_config: dict[str, Any]) -> None:
    targets = {
        target
        for job in prometheus_config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {"api:8000", "worker:9101", "ollama-proxy:11435"} <= targets
    assert prometheus_config["rule_files"] == ["alerts.yml"]


def test_every_required_alert_exists_and_uses_the_exported_metrics(
    alert_rules: list[dict[str, Any]],
) -> None:
    by_name = {rule["alert"]: rule for rule in alert_rules}
    assert set(by_name) >= ALERTS
    assert "cesar_jobs_failed_recent" in by_name["CesarJobsFailed"]["expr"]
    assert "cesar_job_queue_depth" in by_name["CesarJobBacklogGrowing"]["expr"]
    assert "> 300" in by_name["CesarSyncLagHigh"]["expr"]
    assert "> 10" in by_name["CesarIngestionErrors"]["expr"]
    assert by_name["CesarServiceDown"]["expr"].startswith("up == 0")
    for rule in alert_rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_compose_mounts_what_the_tests_check(tools: Any) -> None:
    services = tools.Model((tools.base_file,)).services
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana


# --- Grafana --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasource(repo: Path) -> dict[str, Any]:
    path = repo / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    data = yaml.safe_load(path.read_text())
    assert data["apiVersion"] == 1
    (source,) = data["datasources"]
    assert isinstance(source, dict)
    return source


@pytest.fixture(scope="module")
def dashboard(repo: Path) -> dict[str, Any]:
    data = json.loads((repo / "deploy" / "grafana" / "dashboards" / "cesar.json").read_text())
    assert isinstance(data, dict)
    return data


def _datasource_refs(value: Any) -> list[Any]:
    if isinstance(value, dict):
        found = [value["datasource"]] if "datasource" in value else []
        return found + [r for v in value.values() for r in _datasource_refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _datasource_refs(v)]
    return []


def test_datasource_points_at_the_compose_prometheus(datasource: dict[str, Any]) -> None:
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["uid"]


def test_dashboard_refers_only_to_the_provisioned_datasource(
    dashboard: dict[str, Any], datasource: dict[str, Any]
) -> None:
    refs = _datasource_refs(dashboard["panels"])
    assert refs, "no panel names a datasource"
    for ref in refs:
        assert ref == {"type": "prometheus", "uid": datasource["uid"]}, ref


def test_dashboard_shows_the_operational_metrics(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert all(exprs), "a panel target has no query"
    joined = "\n".join(exprs)
    for metric in (*METRICS, "up"):
        assert metric in joined, f"no panel shows {metric}"
    assert "rate(cesar_api_requests_total" in joined, "no panel shows the HTTP request rate"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_dashboard_provider_loads_the_mounted_folder(repo: Path) -> None:
    path = repo / "deploy" / "grafana" / "provisioning" / "dashboards" / "cesar.yml"
    (provider,) = yaml.safe_load(path.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def _exported_metric_names() -> set[str]:
    """Metric names our services declare (prometheus_client adds _total/_bucket/... suffixes)."""
    names: set[str] = set()
    pattern = re.compile(r"(?:Counter|Gauge|Histogram|Summary)\(\s*[\"'](cesar_[a-z0-9_]+)[\"']")
    for source in (REPO / "services").glob("*/src/**/*.py"):
        names.update(pattern.findall(source.read_text()))
    for source in (REPO / "libs").glob("*/src/**/*.py"):
        names.update(pattern.findall(source.read_text()))
    return names


def test_every_metric_the_alerts_and_dashboard_use_is_exported() -> None:
    exported = _exported_metric_names()
    suffixes = ("_total", "_bucket", "_sum", "_count", "_created")
    used = set(
        re.findall(
            r"\b(cesar_[a-z0-9_]+)",
            (REPO / "deploy/prometheus/alerts.yml").read_text()
            + (REPO / "deploy/grafana/dashboards/cesar.json").read_text(),
        )
    )
    missing = set()
    for name in used:
        bases = {name} | {name.removesuffix(s) for s in suffixes if name.endswith(s)}
        if not bases & exported:
            missing.add(name)
    assert not missing, f"alerts or dashboard use metrics no service exports: {sorted(missing)}"
