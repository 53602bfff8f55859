"""Deployment assets are what their consumers accept: the Serve config and the RayService's embedded
one validate against Ray Serve's schema and point at a real app builder with valid arguments; the
Prometheus config passes promtool; every Grafana query names a metric of the table, with the
exporter's suffix for its type, and every metric of the table is on the dashboard."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from arbray.metrics import METRIC_TABLE

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")]
DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def serve_schema(doc: dict[str, Any]) -> Any:
    from ray.serve.schema import ServeDeploySchema

    return ServeDeploySchema.model_validate(doc)


def check_app(app: Any) -> dict[str, Any]:
    module, _, attr = app.import_path.partition(":")
    builder = getattr(importlib.import_module(module), attr)
    from arbray.actors.serve import DEPLOYMENT, ServeApiConfig

    cfg = ServeApiConfig.model_validate(app.args)
    assert callable(builder) and cfg.namespace == "arbray"
    (dep,) = app.deployments
    assert dep.name == DEPLOYMENT and dep.ray_actor_options.num_cpus == 0
    return dict(app.args)


def test_serve_config_validates_and_stays_on_loopback() -> None:
    doc = yaml.safe_load((DEPLOY / "serve.yaml").read_text())
    schema = serve_schema(doc)
    assert schema.http_options.host == "127.0.0.1" and doc["logging_config"]["enable_access_log"] is False
    (app,) = schema.applications
    args = check_app(app)
    assert "dsn" not in args  # the DSN comes from the node's environment


def test_rayservice_structure() -> None:
    doc = yaml.safe_load((DEPLOY / "kuberay" / "rayservice.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayService")
    embedded = serve_schema(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    (app,) = embedded.applications
    args = check_app(app)
    local = yaml.safe_load((DEPLOY / "serve.yaml").read_text())["applications"][0]["args"]
    assert {k: v for k, v in args.items() if k != "jobs_dir"} == {
        **local, "settings": {k: local["settings"][k] for k in args["settings"]}}
    cluster = doc["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.60.0"
    head = cluster["headGroupSpec"]
    port = head["rayStartParams"]["metrics-export-port"]
    pods = [head["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["ARBRAY_DB"]["valueFrom"]["secretKeyRef"] == {"name": "arbray-db", "key": "dsn"}
        assert all("value" not in e or "://" not in e["value"] for e in container["env"])
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == port
    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {"arbray:0.1.0"}
    command = " ".join(head["template"]["spec"]["containers"][0]["lifecycle"]["postStart"]["exec"]["command"])
    assert "arbray run" in command and "arbray db migrate" in command


def test_prometheus_config_scrapes_the_metrics_export_port() -> None:
    path = DEPLOY / "prometheus" / "prometheus.yml"
    doc = yaml.safe_load(path.read_text())
    (job,) = doc["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    out = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


SUFFIX_TYPES = {"_total": "counter", "_bucket": "histogram", "_count": "histogram", "_sum": "histogram", "": "gauge"}


def test_grafana_queries_name_real_metrics_and_cover_the_table() -> None:
    dash = json.loads((DEPLOY / "grafana" / "arbray.json").read_text())
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Trading", "Execution quality", "Data quality", "System"]
    used: set[str] = set()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            names = re.findall(r"ray_(arbray_[a-z0-9_]+)", target["expr"])
            assert names, target["expr"]
            for full in names:
                for suffix in ("_total", "_bucket", "_count", "_sum", ""):
                    base = full[: len(full) - len(suffix)] if suffix else full
                    if full.endswith(suffix) and base in METRIC_TABLE:
                        spec = METRIC_TABLE[base]
                        want = SUFFIX_TYPES[suffix]
                        assert spec.type == want or (suffix == "" and spec.type == "gauge"), (full, spec.type)
                        used.add(base)
                        break
                else:
                    raise AssertionError(f"{full} is not a metric of arbray.metrics")
    assert used == set(METRIC_TABLE)
