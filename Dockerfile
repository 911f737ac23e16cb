# syntax=docker/dockerfile:1
# The options engine in a container: multi-stage, python:3.11-slim, non-root, Numba cache warmed at build.
#
#   docker build -t options-engine .
#   docker run --rm options-engine                          # sim mode against the built-in simulator
#   docker run --rm -e APCA_API_KEY_ID -e APCA_API_SECRET_KEY \
#       -v $PWD/my-engine.toml:/etc/options-engine/engine.toml:ro \
#       -v oe-state:/var/lib/options-engine options-engine   # paper mode, state on a volume
#
# Metrics bind 127.0.0.1 inside the container (the HEALTHCHECK runs inside too); to scrape from outside,
# set metrics_host = "0.0.0.0" in your engine.toml and publish the port.

# ---- build: install the project and its dependencies into a venv -----------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY greeks ./greeks
COPY risk ./risk
COPY strategies ./strategies
COPY engine ./engine
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

# ---- runtime ----------------------------------------------------------------------------------------
FROM python:3.11-slim
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
# to a throw-away directory. (Numba recompiles once if the host CPU differs from the build machine's.)
RUN STATE_DIRECTORY=/tmp/warm options-engine check-config -c /etc/options-engine/engine.toml >/dev/null \
 && STATE_DIRECTORY=/tmp/warm options-engine run -c /etc/options-engine/engine.toml --duration 15 >/dev/null \
 && rm -rf /tmp/warm

EXPOSE 9464
VOLUME ["/var/lib/options-engine"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["options-engine", "run", "-c", "/etc/options-engine/engine.toml"]
