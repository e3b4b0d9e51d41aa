"""The container image and Kubernetes manifests, checked offline with the tools the field uses.

No Docker engine or cluster runs here: hadolint lints the Dockerfile, kubernetes-validate checks the
manifests against the Kubernetes schemas, and the tests below check that both agree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def _manifest(kind: str) -> dict[str, Any]:
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == kind:
                return doc
    raise KeyError(kind)


def test_dockerfile_passes_hadolint_without_any_finding() -> None:
    done = subprocess.run([_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr


def test_manifests_validate_against_the_kubernetes_schemas() -> None:
    assert {p.name for p in MANIFESTS} == {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"}
    done = subprocess.run([_tool("kubernetes-validate"), "--strict", *map(str, MANIFESTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_manifests_agree_with_the_dockerfile() -> None:
    port = int(re.search(r"^EXPOSE (\d+)", DOCKERFILE, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert f"RERANK_PORT={port}" in DOCKERFILE and f"127.0.0.1:{port}" in DOCKERFILE  # the healthcheck's port
    uid = int(re.search(r"^USER (\d+)", DOCKERFILE, re.MULTILINE).group(1))  # type: ignore[union-attr]

    deployment = _manifest("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    grpc_port = next(p for p in container["ports"] if p["name"] == "grpc")
    assert grpc_port["containerPort"] == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port  # the gRPC health service, as the HEALTHCHECK uses
    assert "rerank\", \"health\"" in DOCKERFILE
    assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["runAsNonRoot"]

    tag = re.search(r"docker build -t (\S+) \.", (ROOT / "README.md").read_text()).group(1)  # type: ignore[union-attr]
    assert container["image"] == tag

    grace = next(int(a.split("=")[1]) for a in container["args"] if a.startswith("--grace="))
    assert pod["terminationGracePeriodSeconds"] > grace
    assert any(a.startswith("--max-connection-age=") for a in container["args"])

    service = _manifest("Service")
    assert service["spec"]["clusterIP"] == "None"  # headless: clients see every pod
    assert service["spec"]["ports"][0]["port"] == port and service["spec"]["ports"][0]["targetPort"] == "grpc"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector == _manifest("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert _manifest("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_server_flags_in_the_manifest_exist() -> None:
    from rerank_server.cli import build_parser

    flags = {o for a in build_parser()._actions for o in a.option_strings}
    container = _manifest("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert all(arg.split("=")[0] in flags for arg in container["args"])
