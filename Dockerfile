# syntax=docker/dockerfile:1
# The options engine in a container: multi-stage, python:3.11-slim, non-root, Numba cache warmed at build.
#
#   docker build -t options-engine .
#   docker build --build-arg BASE=localhost/debian-python:3.11 -t options-engine .   # another Python 3.11 base
#   docker run --rm options-engine                          # sim mode against the built-in simulator
#   docker run --rm -e APCA_API_KEY_ID -e APCA_API_SECRET_KEY \
#       -v $PWD/my-engine.toml:/etc/options-engine/engine.toml:ro \
#       -v oe-state:/var/lib/options-engine options-engine   # paper mode, state on a volume
#
# Metrics bind 127.0.0.1 inside the container (the HEALTHCHECK runs inside too); to scrape from outside,
# set metrics_host = "0.0.0.0" in your engine.toml and publish the port.
#
# BASE is any Debian-like image with Python 3.11 as `python3` (with venv and ensurepip) and `useradd`: the
# public python:3.11-slim by default, or the Debian bookworm base that bench/container.sh builds with
# debootstrap where no registry is reachable (it then builds this same file with buildah).
ARG BASE=python:3.11-slim

# ---- build: install the project and its dependencies into a venv -----------------------------------
FROM ${BASE} AS build
# PIP_CERT (optional): a CA bundle for pip, e.g. behind a TLS-intercepting proxy (bench/container.sh passes the
# host's bundle, mounted for the build only). Unset, pip uses its own.
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY greeks ./greeks
COPY risk ./risk
COPY strategies ./strategies
COPY domain ./domain
COPY engine ./engine
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install .

# ---- runtime ----------------------------------------------------------------------------------------
FROM ${BASE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/options-engine --create-home \
        --shell /usr/sbin/nologin options-engine \
 && install -d -o options-engine -g options-engine -m 0750 /var/lib/options-engine /opt/numba-cache
COPY --from=build /opt/venv /opt/venv
COPY engine.toml /etc/options-engine/engine.toml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    STATE_DIRECTORY=/var/lib/options-engine
USER options-engine
WORKDIR /var/lib/options-engine

# Warm Numba's on-disk cache by running the engine itself for a few seconds in sim mode: every kernel the
# engine uses gets compiled and cached, and a broken image fails the build. The journal written here goes
# to a throw-away directory, and its metrics server takes a free port (builders that share the host's network,
# such as buildah's chroot isolation, must not take 9464 from a running engine). (Numba recompiles once if
# the host CPU differs from the build machine's.)
RUN STATE_DIRECTORY=/tmp/warm options-engine check-config -c /etc/options-engine/engine.toml >/dev/null \
 && mkdir -p /tmp/warm \
 && sed 's/^metrics_port = 9464$/metrics_port = 0/' /etc/options-engine/engine.toml > /tmp/warm/engine.toml \
 && grep -q '^metrics_port = 0$' /tmp/warm/engine.toml \
 && STATE_DIRECTORY=/tmp/warm options-engine run -c /tmp/warm/engine.toml --duration 15 >/dev/null \
 && rm -rf /tmp/warm

EXPOSE 9464
VOLUME ["/var/lib/options-engine"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["options-engine", "run", "-c", "/etc/options-engine/engine.toml"]
