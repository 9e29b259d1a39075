# One image for every Airflow component (api-server, scheduler, dag-processor, triggerer, task pods) and
# for the Dask scheduler and workers, so client, scheduler and workers always run the same dask,
# distributed and privacy_core. Build: docker build -t airflow-imaging-privacy:0.1.0 .
#
#   docker run IMAGE version                  -> airflow version (an Airflow subcommand is the default)
#   docker run IMAGE dask scheduler           -> the Dask scheduler
#   docker run IMAGE dask worker tcp://...    -> a Dask worker (privacy_core importable)
#   docker run IMAGE bash -c "exec airflow scheduler"   -> as the official Airflow chart starts it
#
# No secret is baked in: the ledger URL and the pseudonym key come from Kubernetes Secrets at run time.
#
# Needs Docker 23 or newer (BuildKit's built-in Dockerfile frontend, for the heredoc below). There is no
# "# syntax=" line on purpose: it would make every build fetch a frontend image from Docker Hub.
# tools/build_image_offline.sh builds and smoke-tests the image on a machine without Docker Hub.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: a virtual environment from the pinned requirements, then the project without deps ----
FROM ${PYTHON_IMAGE} AS builder

# uv's version is the Makefile's UV_VERSION (tests/deploy checks they agree).
ARG UV_VERSION=0.13.8
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never

RUN python -m pip install "uv==${UV_VERSION}" \
    && uv venv --python /usr/local/bin/python3.11 /opt/venv

WORKDIR /src
# Dependencies first: this layer is rebuilt only when they change. requirements-image.txt is the run-time
# subset of requirements.txt (same pins, no test, lint, benchmark or chart tooling).
COPY requirements-image.txt ./
RUN uv pip install --python /opt/venv/bin/python -r requirements-image.txt

COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY privacy_core/ privacy_core/
COPY operators/ operators/
RUN uv pip install --python /opt/venv/bin/python --no-deps . \
    && /opt/venv/bin/python -c "import operators.get_provider_info, privacy_core.imaging.compute"

# Dask workers started by the nanny get privacy_core's glibc settings (the embedded cluster sets the same).
RUN mkdir -p /opt/venv/etc/dask \
    && /opt/venv/bin/python -c 'import json; from privacy_core.imaging.compute import WORKER_MALLOC_ENV; print(json.dumps({"distributed": {"nanny": {"pre-spawn-environ": WORKER_MALLOC_ENV}}}, indent=2))' \
    > /opt/venv/etc/dask/imaging-privacy.yaml

# ---- runtime: the slim base, the venv, a non-root user ----
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="airflow-imaging-privacy" \
      org.opencontainers.image.description="Airflow provider and Dask workers for private release of medical images" \
      org.opencontainers.image.licenses="Apache-2.0"

# tini reaps the task processes Airflow's LocalExecutor and Dask's nanny start, and forwards signals.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# UID and GID 50000, as in the official Airflow image; the chart's securityContext uses the same numbers.
RUN groupadd --gid 50000 airflow \
    && useradd --uid 50000 --gid 50000 --home-dir /home/airflow --create-home --shell /bin/bash airflow \
    && install -d -o 50000 -g 50000 -m 0775 \
       /opt/airflow /opt/airflow/dags /opt/airflow/logs /opt/airflow/plugins

COPY --from=builder /opt/venv /opt/venv

# `airflow ARGS` unless the first argument is a program this image runs directly (as the official
# Airflow image does, so the official chart's "bash -c 'exec airflow ...'" commands work unchanged).
COPY --chmod=0755 <<"EOF" /usr/local/bin/imaging-privacy-entrypoint
#!/bin/sh
case "${1:-}" in
  airflow | dask | imaging-privacy | python | python3 | bash | sh)
    exec "$@"
    ;;
  *)
    exec airflow "$@"
    ;;
esac
EOF

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    AIRFLOW_HOME=/opt/airflow \
    HOME=/home/airflow \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

WORKDIR /opt/airflow
USER 50000:50000

EXPOSE 8080 8786 8787 8788 8789 8790

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/imaging-privacy-entrypoint"]
CMD ["airflow", "version"]
