"""What the deploy schemas cannot check: compose.yaml, the kustomize manifests and the
Dockerfile name only settings Goldwire reads, commands that exist, probes on routes that
exist on the port each process listens on, and a grace period that fits the drain.

Schema validation itself (hadolint, compose-spec, kubernetes-validate) is deploy/check.sh.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from goldwire.activity.api import create_app as activity_app
from goldwire.activity.settings import ActivitySettings
from goldwire.cli.main import build_parser
from goldwire.gateway.app import create_app as gateway_app
from goldwire.gateway.settings import GatewaySettings
from goldwire.presence.api import create_app as presence_app
from goldwire.presence.settings import PresenceSettings
from goldwire.sessions.api import create_app as sessions_app
from goldwire.sessions.settings import SessionsSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings, "presence": PresenceSettings,
    "sessions": SessionsSettings, "activity": ActivitySettings,
}
APPS = {"gateway": gateway_app, "presence": presence_app,
        "sessions": sessions_app, "activity": activity_app}
# Read outside the settings classes: the processes' log level and format
# (libs/service/logs.py), the OTLP endpoint that turns traces on (libs/service/tracing.py)
# and the image's health check URL (libs/cli/probe.py).
OTHER_NAMES = {"LOG_LEVEL", "LOG_FORMAT", "GOLDWIRE_PROBE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"}


def env_names(settings: type[BaseSettings]) -> set[str]:
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        names.add((alias if isinstance(alias, str) else name).upper())
    return names


def names_read_by(kind: str) -> set[str]:
    return env_names(SETTINGS[kind]) | OTHER_NAMES


ALL_NAMES = set().union(*(names_read_by(k) for k in SETTINGS))


def default_port(kind: str) -> int:
    settings = SETTINGS[kind](_env_file=None)  # type: ignore[call-arg]
    return int(getattr(settings, f"{kind}_port"))


def routes(kind: str) -> set[str]:
    app = APPS[kind](SETTINGS[kind](_env_file=None))  # type: ignore[call-arg]
    return {getattr(r, "path", "") for r in app.routes}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def goldwire_services() -> dict[str, dict[str, Any]]:
    """compose services that run the Goldwire image, by the process they run."""
    found = {}
    for service in compose()["services"].values():
        if service.get("image") == "goldwire:local":
            found[service["command"][0]] = service
    return found


def base_manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += load_all(path)
    return docs


def kubectl() -> str | None:
    venv_kubectl = ROOT / ".venv" / "bin" / "kubectl"
    return str(venv_kubectl) if venv_kubectl.exists() else shutil.which("kubectl")


def built_overlays() -> dict[str, list[dict[str, Any]]]:
    binary = kubectl()
    if binary is None:
        pytest.skip("kubectl is not installed (make deploy-check installs it)")
    built = {}
    for overlay in sorted((K8S / "overlays").iterdir()):
        out = subprocess.run([binary, "kustomize", str(overlay)], check=True,
                             capture_output=True, text=True, timeout=60).stdout
        built[overlay.name] = [d for d in yaml.safe_load_all(out) if d]
    return built


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Goldwire Deployments by the process their container runs."""
    return {d["spec"]["template"]["spec"]["containers"][0]["args"][0]: d
            for d in docs if d["kind"] == "Deployment"}


def configmap(docs: list[dict[str, Any]]) -> dict[str, str]:
    return next(d for d in docs if d["kind"] == "ConfigMap"
                and d["metadata"]["name"].startswith("goldwire-config"))["data"]


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


# --- compose -------------------------------------------------------------------------------
def test_compose_runs_every_process_with_settings_it_reads() -> None:
    services = goldwire_services()
    assert set(services) == set(SETTINGS)
    for kind, service in services.items():
        unknown = set(service.get("environment", {})) - names_read_by(kind)
        assert not unknown, f"compose {kind} sets {unknown}, which goldwire {kind} never reads"


def test_compose_probes_readyz_on_the_port_each_process_listens_on() -> None:
    for kind, service in goldwire_services().items():
        port = int(service["environment"].get(f"{kind.upper()}_PORT", default_port(kind)))
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "goldwire", "probe"]
        url = test[3]
        assert url == f"http://127.0.0.1:{port}/readyz"
        assert "/readyz" in routes(kind)
        assert all(c.get("condition") == "service_healthy"
                   for c in service.get("depends_on", {}).values())


def test_compose_gateways_sit_behind_the_proxy_and_only_it_is_published() -> None:
    services = compose()["services"]
    published = [name for name, s in services.items() if s.get("ports")]
    assert published == ["proxy"]
    assert services["gateway"]["deploy"]["replicas"] >= 2
    haproxy = (ROOT / "deploy" / "compose" / "haproxy.cfg").read_text()
    assert re.search(r"server-template \S+ 2 gateway:8000", haproxy)
    assert "option httpchk GET /readyz" in haproxy


def test_compose_stop_grace_covers_the_drain() -> None:
    gateway = goldwire_services()["gateway"]
    grace = int(gateway["stop_grace_period"].rstrip("s"))
    drain = float(gateway["environment"].get("DRAIN_TIMEOUT", GatewaySettings().drain_timeout))
    assert grace >= drain + 5


def test_env_example_names_only_settings_goldwire_reads() -> None:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    assert {"JWT_SECRET", "API_KEYS"} <= names
    assert names <= ALL_NAMES, names - ALL_NAMES
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored


# --- the image ---------------------------------------------------------------------------------
def test_dockerfile_runs_an_existing_command_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    commands = subcommands()
    cmd = re.search(r'^CMD \["(\w+)"\]', text, re.M)
    assert cmd and cmd.group(1) in commands
    assert re.search(r'^ENTRYPOINT \["goldwire"\]', text, re.M)
    assert re.search(r'^HEALTHCHECK .*CMD \["goldwire", "probe"\]', text, re.M)
    assert "probe" in commands
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2  # multi-stage
    for kind in SETTINGS:
        assert kind in commands


# --- Kubernetes --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def overlays() -> dict[str, list[dict[str, Any]]]:
    return built_overlays()


def check_deployments(docs: list[dict[str, Any]]) -> None:
    settings = configmap(docs)
    deps = deployments(docs)
    assert set(deps) == set(SETTINGS)
    commands = subcommands()
    for kind, dep in deps.items():
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"][0] in commands
        port = int(settings.get(f"{kind.upper()}_PORT", default_port(kind)))
        assert settings.get(f"{kind.upper()}_HOST") == "0.0.0.0"
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named["http"] == port, f"{kind} listens on {port}"
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert {"/readyz", "/healthz", "/metrics"} <= routes(kind)
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        env = {e["name"] for e in container.get("env", [])}
        assert env <= names_read_by(kind), env - names_read_by(kind)
        sources = [next(iter(s)) for s in container["envFrom"]]
        assert sources == ["configMapRef", "secretRef"]  # the Secret's keys win
    unknown = set(settings) - ALL_NAMES
    assert not unknown, f"the ConfigMap sets {unknown}, which no process reads"


def check_drain(docs: list[dict[str, Any]]) -> None:
    gateway = deployments(docs)["gateway"]["spec"]["template"]["spec"]
    container = gateway["containers"][0]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(configmap(docs).get("DRAIN_TIMEOUT", GatewaySettings().drain_timeout))
    # preStop, then SIGTERM: 4012 to every client, up to DRAIN_TIMEOUT, then shut down.
    assert gateway["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + drain + 5


def test_base_deployments_probe_real_routes_and_read_real_settings() -> None:
    docs = base_manifests()
    check_deployments(docs)
    check_drain(docs)


def test_every_overlay_builds_with_probes_drain_and_autoscaling(
        overlays: dict[str, list[dict[str, Any]]]) -> None:
    assert {"dev", "prod"} <= set(overlays)
    for name, docs in overlays.items():
        check_deployments(docs)
        check_drain(docs)
        kinds = {d["kind"] for d in docs}
        assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "Service",
                "ConfigMap"} <= kinds, name
        hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "goldwire-gateway"
        budgets = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
                   for d in docs if d["kind"] == "PodDisruptionBudget"}
        assert {f"goldwire-{k}" for k in SETTINGS} <= budgets


def test_dev_runs_redis_in_cluster_and_prod_expects_an_external_one(
        overlays: dict[str, list[dict[str, Any]]]) -> None:
    dev_sets = [d for d in overlays["dev"] if d["kind"] == "StatefulSet"]
    assert [d["metadata"]["name"] for d in dev_sets] == ["goldwire-redis"]
    assert any(d["kind"] == "Secret" for d in overlays["dev"])
    secrets = next(d for d in overlays["dev"] if d["kind"] == "Secret")
    assert set(secrets["data"]) <= ALL_NAMES
    assert not [d for d in overlays["prod"] if d["kind"] in ("StatefulSet", "Secret")]


def test_probe_is_zero_on_2xx_and_one_on_errors_or_no_answer() -> None:
    """`goldwire probe`, the image's HEALTHCHECK, against a real HTTP server."""
    import io
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from goldwire.cli import main

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert main(["probe", f"{base}/readyz"], environ={}, out=io.StringIO()) == 0
        assert main(["probe", f"{base}/down"], environ={}, out=io.StringIO()) == 1
        assert main(["probe"], environ={"GOLDWIRE_PROBE_URL": f"{base}/readyz"},
                    out=io.StringIO()) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert main(["probe", f"{base}/readyz", "--timeout", "1"], environ={},
                out=io.StringIO()) == 1
