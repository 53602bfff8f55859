"""Project-level checks: the core never imports Ray, and cluster.yaml is what Ray expects."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def test_core_never_imports_ray() -> None:
    offenders = []
    for path in (REPO / "arbray").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n == "ray" or n.startswith("ray.")]
    assert offenders == []


def test_subpackages_install_under_arbray() -> None:
    import arbray.actors
    import arbray.strategies

    assert Path(arbray.actors.__file__).parent.name == "actors"
    assert Path(arbray.strategies.__file__).parent.name == "strategies"


def test_cluster_yaml_validates_against_rays_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["provider"]["type"] == "local" and len(config["provider"]["worker_ips"]) == config["max_workers"]
    assert all("6379" not in c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"])
