# syntax=docker/dockerfile:1
#
# The logship image: one image for `logship ingest` (the default) and `logship load`.
#
#   docker build -t logship:0.1.0 .
#   docker run --rm -p 8080:8080 -e LOGSHIP_AUTH_TOKENS=... -v logship-data:/var/lib/logship logship:0.1.0
#   docker run --rm -p 8081:8081 -e LOGSHIP_WAREHOUSE_URL=... logship:0.1.0 load
#
# Checked by tests/deploy/test_dockerfile.py (base tags, user, ports, entrypoint, lock file).

# ---------------------------------------------------------------------------- builder
# Same base as the runtime stage, so the virtualenv copied below finds the same interpreter at
# the same path. Pinned to a patch release: rebuilds are reproducible; bump it deliberately.
FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only here, in case a pinned dependency has no wheel for the target platform and
# must be built from source. None of it reaches the runtime stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first, from the lock file alone: this layer is rebuilt only when the lock changes.
COPY requirements.lock /src/requirements.lock
RUN pip install -r /src/requirements.lock

# Then logship itself, built as a wheel and installed into the venv under the same constraints
# (it must not pull or upgrade anything the lock does not pin).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingest ./ingest
COPY loader ./loader
RUN pip wheel --no-deps --wheel-dir /dist . \
    && pip install -c /src/requirements.lock /dist/logship-*.whl \
    && pip check

# ---------------------------------------------------------------------------- runtime
FROM python:3.11.13-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="logship" \
      org.opencontainers.image.description="Application logs to warehouse-grade business events" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric UID/GID so Kubernetes `runAsUser`/`fsGroup` and volume ownership are stable.
RUN groupadd --system --gid 10001 logship \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/logship --no-create-home \
       --shell /usr/sbin/nologin logship \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/logship

# Only the virtualenv (dependencies + the logship wheel): no source tree, no compiler.
COPY --from=builder /opt/venv /opt/venv

# Listen on all interfaces inside the container (the defaults are 127.0.0.1, right for a laptop,
# unreachable from outside a container). Everything logship writes lives under /var/lib/logship,
# the one writable path: the Helm chart runs with readOnlyRootFilesystem and mounts a volume
# there (the spool must survive restarts: acknowledged events wait there until uploaded).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/logship \
    LOGSHIP_HTTP_ADDR=0.0.0.0:8080 \
    LOGSHIP_LOADER_HTTP_ADDR=0.0.0.0:8081 \
    LOGSHIP_SPOOL_DIR=/var/lib/logship/spool \
    LOGSHIP_LAKE_URL=/var/lib/logship/lake

WORKDIR /var/lib/logship
VOLUME ["/var/lib/logship"]

USER 10001

# 8080: ingest (/v1/logs, Datadog routes, /healthz, /readyz, /metrics); 8081: loader (/healthz, /metrics).
EXPOSE 8080 8081

# logship drains on SIGTERM: readiness 503, in-flight batches finish, the spool is flushed to the
# lake (bounded by LOGSHIP_SHUTDOWN_TIMEOUT_S; give the pod a longer terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM

# No HEALTHCHECK: the same image serves ingest (8080) and the loader (8081), and Kubernetes uses
# its own probes (/healthz, /readyz) rather than Docker's.
ENTRYPOINT ["logship"]
CMD ["ingest"]
