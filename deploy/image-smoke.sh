#!/usr/bin/env bash
# Build the real image and run it, on a machine with no Docker engine and no container
# registry: podman (Debian) builds the Dockerfile FROM a Debian bookworm base made by
# debootstrap from Debian's package mirror, then runs `goldwire --help` and a gateway
# (read-only root, user 10001) against a private Redis until its /readyz answers 200, and
# stops it with SIGTERM inside the drain budget.
#
# Where podman cannot be installed or cannot start any container at all, this prints why
# and exits 0 (the offline checks in deploy/check.sh still hold); once a container runs,
# every later failure is a real failure.
#
# Flags this machine needs (seen here): runc (crun 1.8 refuses hybrid cgroups), ulimits
# below the host's (raising NOFILE needs CAP_SYS_RESOURCE), host networking for the build,
# and the host's CA bundle mounted into the build (PyPI is reached through a TLS proxy).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

skip() { echo "image smoke skipped: $*" >&2; exit 0; }
base=localhost/goldwire-base:bookworm
image=localhost/goldwire:smoke
run=(podman --log-level=panic --runtime runc run --rm --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 \
        || ! command -v debootstrap >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends \
        podman runc debootstrap uidmap fuse-overlayfs netavark ca-certificates </dev/null; } \
        >/tmp/goldwire-image-apt.log 2>&1 || skip "podman could not be installed (see /tmp/goldwire-image-apt.log)"
fi

if ! podman image exists "$base"; then
    mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    rootfs="$(mktemp -d)"
    echo "debootstrap bookworm from $mirror"
    timeout 300 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$mirror" >/tmp/goldwire-debootstrap.log 2>&1 \
        || skip "debootstrap failed (see /tmp/goldwire-debootstrap.log)"
    tar -C "$rootfs" -c . | podman import - "$base" >/dev/null
    rm -rf "$rootfs"
fi
"${run[@]}" "$base" python3 --version >/dev/null 2>&1 || skip "podman cannot run a container here"

ca=()
[ -f /etc/ssl/certs/ca-certificates.crt ] && \
    ca=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
echo "podman build (Dockerfile, FROM $base)"
timeout 600 podman build --format docker --runtime runc --ulimit nofile=4096:4096 \
    --ulimit nproc=4096:4096 --network=host "${ca[@]}" \
    --build-arg PYTHON_IMAGE="$base" -t "$image" .

echo "goldwire --help in the image"
"${run[@]}" "$image" --help | grep -q "gateway"

redis_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
gw_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "/tmp/goldwire-smoke-redis.pid" >/dev/null
name="goldwire-smoke-$$"
cleanup() {
    podman rm -f "$name" >/dev/null 2>&1 || true
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT
echo "gateway in the image (read-only root, user 10001) on 127.0.0.1:$gw_port"
"${run[@]}" -d --name "$name" --network=host --read-only --tmpfs /tmp \
    -e REDIS_URL="redis://127.0.0.1:$redis_port/0" -e GATEWAY_HOST=127.0.0.1 \
    -e GATEWAY_PORT="$gw_port" -e GOLDWIRE_PROBE_URL="http://127.0.0.1:$gw_port/readyz" \
    -e JWT_SECRET=smoke-secret -e API_KEYS=smoke-key \
    "$image" gateway >/dev/null
ready=""
for _ in $(seq 60); do
    if ready="$(podman exec "$name" goldwire probe "http://127.0.0.1:$gw_port/readyz" 2>&1)"; then
        break
    fi
    ready=""
    sleep 0.5
done
[ -n "$ready" ] || { podman logs "$name" >&2 || true; echo "gateway never became ready" >&2; exit 1; }
echo "$ready"
# The image's own HEALTHCHECK (podman runs it on demand; it has no systemd timer here).
podman healthcheck run "$name" 2>/dev/null && echo "HEALTHCHECK: healthy"
[ "$(podman exec "$name" id -u)" = 10001 ]
start=$(date +%s)
podman stop -t 20 "$name" >/dev/null
echo "stopped by SIGTERM in $(( $(date +%s) - start )) s"
echo "image smoke: passed"
