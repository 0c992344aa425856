# syntax=docker/dockerfile:1.7
# One image recipe for every CESAR Python service. Build context: the repository root.
#   docker build --build-arg SERVICE=api --target api -t cesar/api:local .
# SERVICE names the folder under services/ (api, worker, migrator, dashboard, ollama-proxy);
# the target of the same name sets that service's command and port. Compose passes both.
# Stage `builder` installs the locked dependencies of cesar-$SERVICE (a cached layer, rebuilt
# only when a pyproject.toml or uv.lock changes), then cesar-core and the service's code,
# non-editable, into /app/.venv. Stage `runtime` is python:3.11-slim with that venv only, run
# as an unprivileged user.

FROM python:3.11-slim AS builder
ARG SERVICE
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# A missing or misspelt SERVICE stops the build here, with a message, not at `uv sync`.
RUN test -n "$SERVICE" || { echo "build with --build-arg SERVICE=<folder under services/>" >&2; exit 1; }

# Dependencies only: every workspace member's pyproject.toml is needed for `--locked`.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=libs/cesar-core/pyproject.toml,target=libs/cesar-core/pyproject.toml \
    --mount=type=bind,source=services/api/pyproject.toml,target=services/api/pyproject.toml \
    --mount=type=bind,source=services/worker/pyproject.toml,target=services/worker/pyproject.toml \
    --mount=type=bind,source=services/migrator/pyproject.toml,target=services/migrator/pyproject.toml \
    --mount=type=bind,source=services/dashboard/pyproject.toml,target=services/dashboard/pyproject.toml \
    --mount=type=bind,source=services/ollama-proxy/pyproject.toml,target=services/ollama-proxy/pyproject.toml \
    uv sync --locked --no-dev --no-install-workspace --package cesar-${SERVICE}

# Then the code this image runs: cesar-core and the service itself.
COPY pyproject.toml uv.lock ./
COPY libs/cesar-core/pyproject.toml libs/cesar-core/pyproject.toml
COPY services/api/pyproject.toml services/api/pyproject.toml
COPY services/worker/pyproject.toml services/worker/pyproject.toml
COPY services/migrator/pyproject.toml services/migrator/pyproject.toml
COPY services/dashboard/pyproject.toml services/dashboard/pyproject.toml
COPY services/ollama-proxy/pyproject.toml services/ollama-proxy/pyproject.toml
COPY libs/cesar-core/src libs/cesar-core/src
COPY services/${SERVICE}/src services/${SERVICE}/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package cesar-${SERVICE}


FROM python:3.11-slim AS runtime
# pg_dump / pg_restore for `cesar-backup` on PostgreSQL (CockroachDB backs up with SQL alone);
# only the migrator image needs them, but one image for every service keeps one Dockerfile.
ARG SERVICE
RUN if [ "$SERVICE" = "migrator" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends postgresql-client \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN groupadd --system --gid 10001 cesar \
    && useradd --system --uid 10001 --gid cesar --create-home --home-dir /home/cesar \
       --shell /usr/sbin/nologin cesar
# Owned by root and read-only for the service user.
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001


# One target per service: its command and port (build it with the matching SERVICE).
FROM runtime AS api
EXPOSE 8000
CMD ["cesar-api"]

FROM runtime AS worker
EXPOSE 9101
CMD ["cesar-worker"]

FROM runtime AS migrator
# The SQL files the migrator applies.
COPY migrations /app/migrations
ENV MIGRATIONS_DIR=/app/migrations
CMD ["sh", "-c", "cesar-migrate apply && cesar-migrate verify"]

FROM runtime AS dashboard
ENV STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
EXPOSE 3000
CMD ["cesar-dashboard"]

FROM runtime AS ollama-proxy
EXPOSE 11435
CMD ["cesar-ollama-proxy"]
