# format-proxy: the S3 sidecar (`format-proxy serve`, the default command) and its injector
# (`format-proxy webhook`), in one image.
#
#   docker build -t format-proxy:0.1.0 .
#   docker run --rm --read-only --tmpfs /tmp -p 127.0.0.1:15480:15480 -p 15490:15490 \
#     -e FORMAT_PROXY_LISTEN=0.0.0.0:15480 format-proxy:0.1.0
#
# Runs as UID/GID 10001 with a read-only root filesystem: the only path it writes is $TMPDIR
# (/tmp; an emptyDir in k8s/). Dependencies are pinned by k8s/image/constraints.txt.
# tests/k8s/test_image.py runs these build steps in a fresh virtualenv and checks the result.

# --- build: a self-contained virtualenv in /opt/format-proxy -------------------------------
FROM python:3.11.14-slim-bookworm AS build

WORKDIR /src

# Dependencies first: this layer is rebuilt only when the lock changes.
COPY k8s/image/constraints.txt k8s/image/constraints.txt
RUN python -m venv --without-pip /opt/format-proxy \
    && python -m pip --python /opt/format-proxy/bin/python install --no-cache-dir \
        --disable-pip-version-check --requirement k8s/image/constraints.txt

# The package itself, without extras (no test tools, no embedded moto).
COPY pyproject.toml README.md ./
COPY proxy proxy
RUN python -m pip --python /opt/format-proxy/bin/python install --no-cache-dir \
        --disable-pip-version-check --no-deps . \
    && python -m pip --python /opt/format-proxy/bin/python check

# --- runtime ----------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="format-proxy" \
      org.opencontainers.image.description="S3 sidecar that translates documents between XML and JSON by the pod's declared version" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# A named user for the fixed UID/GID (ps, whoami); no home directory, no login shell.
RUN groupadd --system --gid 10001 format-proxy \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin format-proxy

# Byte-compiled at install time, owned by root: the runtime user can read, never write.
COPY --from=build /opt/format-proxy /opt/format-proxy

ENV PATH="/opt/format-proxy/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp

USER 10001:10001
WORKDIR /tmp

# 15480: S3 data listener (loopback by default); 15490: /metrics, /healthz, /readyz.
EXPOSE 15480 15490

ENTRYPOINT ["format-proxy"]
CMD ["serve"]
