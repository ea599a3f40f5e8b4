# syntax=docker/dockerfile:1
# otel-sysops container image: build the wheel in one stage, install it in a clean slim one.
#
#   docker build -t otel-sysops .
#   docker run --rm --pid=host --network=host -v /:/host:ro,rslave \
#     -e SYSOPS_HOST_ROOT=/host -e SYSOPS_PROCFS=/host/proc -e SYSOPS_SYSFS=/host/sys \
#     -e SYSOPS_PROMETHEUS__HOST=0.0.0.0 otel-sysops
#
# See docs/install.md for the capabilities to add and deploy/kubernetes/ for a DaemonSet.

ARG PYTHON_VERSION=3.12

# ---- build: the wheel and its dependencies' wheels ---------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
# Compilers only for dependencies without a wheel for this platform (e.g. psutil on musl/arm32).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY otel_sysops ./otel_sysops
COPY instrumentation ./instrumentation
COPY analyzers ./analyzers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- runtime: Python, the wheels, nothing else -------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="otel-sysops" \
      org.opencontainers.image.description="OpenTelemetry-native host monitoring agent" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels otel-sysops \
    && groupadd --system --gid 10001 sysops \
    && useradd --system --uid 10001 --gid sysops --no-create-home --shell /usr/sbin/nologin sysops \
    && install -d -o sysops -g sysops -m 0750 /var/lib/otel-sysops
# The rollup history (SQLite) and the followed log files' positions live on a volume; the root
# filesystem can be read-only.
ENV SYSOPS_STORE__SQLITE_PATH=/var/lib/otel-sysops/rollups.db \
    SYSOPS_LOGS__STATE_DIR=/var/lib/otel-sysops/logs
VOLUME ["/var/lib/otel-sysops"]
USER 10001:10001
EXPOSE 9464
# /healthz answers 200 while ticks arrive (Kubernetes uses its own probes on the same path).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request; port=os.environ.get('SYSOPS_PROMETHEUS__PORT','9464'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["otel-sysops"]
CMD ["run"]
