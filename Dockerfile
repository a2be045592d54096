# syntax=docker/dockerfile:1
# One image for every Goldwire process; the command picks the process:
#   docker run IMAGE gateway | presence | sessions | activity
# Runtime dependencies only: the test and bench extras never reach this image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels and a venv, with the compilers the wheels may need -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/goldwire
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
# A non-editable install copies the packages (and their Lua and JS files) into the venv,
# so the final image needs no source tree (with the OpenTelemetry exporter: traces are on
# when OTEL_EXPORTER_OTLP_ENDPOINT is set); byte-compile now because the root filesystem
# is read-only at run time.
RUN /opt/goldwire/bin/pip install --no-compile '.[otel]' \
    && /opt/goldwire/bin/python -m compileall -q /opt/goldwire/lib

# --- runtime: the venv and nothing else -------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="goldwire" \
      org.opencontainers.image.description="Goldwire: the real-time layer of the Goldleaves legal platform (gateway, presence, sessions, activity)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Proprietary"
ENV PATH=/opt/goldwire/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 \
    PRESENCE_HOST=0.0.0.0 \
    SESSIONS_HOST=0.0.0.0 \
    ACTIVITY_HOST=0.0.0.0
RUN groupadd --system --gid 10001 goldwire \
    && useradd --system --uid 10001 --gid goldwire --no-create-home --shell /usr/sbin/nologin goldwire
COPY --from=build /opt/goldwire /opt/goldwire
USER 10001:10001
EXPOSE 8000 8001 8002 8003
# `goldwire probe` GETs GOLDWIRE_PROBE_URL (default: the gateway's /healthz); each
# service's container sets it to its own port. Kubernetes uses its own probes instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["goldwire", "probe"]
ENTRYPOINT ["goldwire"]
CMD ["gateway"]
