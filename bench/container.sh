#!/usr/bin/env bash
# bench/container.sh - build the container image without a registry, run it, and check it.
#
# Where the public registry is unreachable (no python:3.11-slim), this builds the same Dockerfile on a local
# base instead:
#   1. tools      debootstrap and buildah (installed with apt-get when missing and running as root);
#   2. base       a minimal Debian bookworm root file system (debootstrap --variant=minbase) with Debian's
#                 Python 3.11 (python3, python3-venv, python3-pip, python-is-python3, ca-certificates),
#                 cached as a tarball and imported into buildah as $BASE_IMAGE;
#   3. image      buildah bud --isolation chroot --build-arg BASE=$BASE_IMAGE (pip reaches PyPI);
#   4. run        the image in sim mode for $RUN_SECONDS s in a private network namespace (so its 127.0.0.1:9464
#                 is its own): /healthz must answer 200 while it runs, the image's own HEALTHCHECK command must
#                 pass, and the run must print a sim-mode summary naming the three strategies;
#   5. result     image id, size, build time, healthz status and a summary excerpt; non-zero exit on failure.
#
# Needs root (debootstrap, chroot). Storage is buildah's vfs driver (works without overlay support).
#
#   sudo bench/container.sh                     # everything; reuses the cached base tarball and base image
#   sudo REBUILD_BASE=1 bench/container.sh      # debootstrap again and re-import the base
#
# Environment: CACHE_DIR (default /var/cache/options-engine-container), SUITE (bookworm), MIRROR
# (http://deb.debian.org/debian), BASE_IMAGE (localhost/debian-python:3.11), IMAGE
# (localhost/options-engine:latest), RUN_SECONDS (30), REBUILD_BASE (0), KEEP_IMAGE (1: keep the built image),
# CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt: the CAs pip trusts during the build; "" = pip's own).
# shellcheck disable=SC2001  # sed prefixes every line of multi-line text
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${CACHE_DIR:-/var/cache/options-engine-container}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:3.11}
IMAGE=${IMAGE:-localhost/options-engine:latest}
RUN_SECONDS=${RUN_SECONDS:-30}
REBUILD_BASE=${REBUILD_BASE:-0}
KEEP_IMAGE=${KEEP_IMAGE:-1}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
BASE_PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
STRATEGIES=(gamma_scalper iron_condor zero_dte)
BUILDAH=(buildah --storage-driver vfs)

mkdir -p "$CACHE_DIR"
# The run's logs (build log, engine output, summary) are kept here.
WORK=$(mktemp -d "$CACHE_DIR/run-$(date -u +%Y%m%dT%H%M%S).XXXX")
RUN_CTR=""
step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
cleanup() {
    local rc=$?
    if [[ -n "$RUN_CTR" ]]; then "${BUILDAH[@]}" rm "$RUN_CTR" >/dev/null 2>&1 || true; fi
    if [[ $rc -ne 0 ]]; then printf 'bench/container.sh: failed (exit %d); logs in %s\n' "$rc" "$WORK" >&2; fi
}
trap cleanup EXIT
T0=$(date +%s)

# ---- 1. tools ---------------------------------------------------------------------------------------
step "1/5 tools"
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and chroot need it): sudo $0"
missing=()
for tool in debootstrap buildah; do command -v "$tool" >/dev/null || missing+=("$tool"); done
for tool in unshare:util-linux ip:iproute2 tar:tar python3:python3; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "missing: ${missing[*]}; install them (Debian/Ubuntu package names)"
    info "installing with apt-get: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
fi
info "debootstrap $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || echo '?'), $(buildah --version)"
info "context $ROOT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"

# ---- 2. base image ----------------------------------------------------------------------------------
step "2/5 base image $BASE_IMAGE (Debian $SUITE minbase + Debian's Python 3.11)"
TARBALL="$CACHE_DIR/debian-$SUITE-python3.tar"
tb0=$(date +%s)
if [[ -f "$TARBALL" && "$REBUILD_BASE" != 1 ]]; then
    info "reusing the cached root file system $TARBALL ($(du -h "$TARBALL" | cut -f1))"
else
    curl -fsSI --max-time 20 "$MIRROR/dists/$SUITE/Release" >/dev/null \
        || die "cannot reach $MIRROR/dists/$SUITE/Release (set MIRROR to a reachable Debian mirror)"
    rootfs="$CACHE_DIR/rootfs.tmp"
    rm -rf "$rootfs"
    info "debootstrap --variant=minbase --include=$BASE_PACKAGES $SUITE (log: $CACHE_DIR/debootstrap.log)"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
        >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
    pyver=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [[ "$pyver" == 3.11 ]] || die "$SUITE's python3 is $pyver, the engine needs 3.11"
    chroot "$rootfs" python3 -c 'import venv, ensurepip, sqlite3, ssl' || die "the base's Python lacks venv/ensurepip/sqlite3/ssl"
    chroot "$rootfs" sh -c 'command -v useradd >/dev/null' || die "the base has no useradd"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$rootfs"
    info "root file system: $TARBALL ($(du -h "$TARBALL" | cut -f1)), Python $pyver"
fi
if [[ "$REBUILD_BASE" != 1 ]] && "${BUILDAH[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    info "reusing the base image $BASE_IMAGE"
else
    "${BUILDAH[@]}" rmi "$BASE_IMAGE" >/dev/null 2>&1 || true
    ctr=$("${BUILDAH[@]}" from scratch)
    "${BUILDAH[@]}" add "$ctr" "$TARBALL" / >/dev/null
    "${BUILDAH[@]}" config \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
        --cmd python3 --label "org.opencontainers.image.description=Debian $SUITE minbase with Python 3.11" \
        "$ctr"
    "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
    info "imported $BASE_IMAGE"
fi
BASE_TIME=$(($(date +%s) - tb0))
BASE_SIZE=$("${BUILDAH[@]}" images --format '{{.Size}}' "$BASE_IMAGE" | head -n1)
info "base image size $BASE_SIZE (step took ${BASE_TIME} s)"

# ---- 3. image ---------------------------------------------------------------------------------------
step "3/5 image $IMAGE (buildah bud --isolation chroot --build-arg BASE=$BASE_IMAGE)"
# pip inside the build trusts the host's CA bundle (a network that intercepts TLS has its own CA there): it is
# bind-mounted over the base's /etc/ssl/certs/ca-certificates.crt for the RUN steps only (never committed into
# the image) and named by the Dockerfile's PIP_CERT build argument.
build_opts=()
if [[ -n "$CA_BUNDLE" ]]; then
    [[ -f "$CA_BUNDLE" ]] || die "CA_BUNDLE=$CA_BUNDLE does not exist (CA_BUNDLE= for pip's own bundle)"
    build_opts=(--build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt
                -v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
    info "pip trusts the host's CA bundle $CA_BUNDLE during the build (mounted, not copied)"
fi
PREVIOUS_ID=$("${BUILDAH[@]}" images --noheading --no-trunc --format '{{.ID}}' "$IMAGE" 2>/dev/null | head -n1 || true)
tb0=$(date +%s)
"${BUILDAH[@]}" bud --isolation chroot --format docker --build-arg "BASE=$BASE_IMAGE" "${build_opts[@]}" \
    -f "$ROOT/Dockerfile" -t "$IMAGE" "$ROOT" 2>&1 | tee "$WORK/build.log" | sed 's/^/    | /' \
    || die "buildah bud failed (build log above)"
BUILD_TIME=$(($(date +%s) - tb0))
IMAGE_ID=$("${BUILDAH[@]}" images --noheading --no-trunc --format '{{.ID}}' "$IMAGE" | head -n1)
IMAGE_SIZE=$("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE" | head -n1)
[[ -n "$IMAGE_ID" ]] || die "the image $IMAGE is not in buildah's storage after the build"
if [[ -n "$PREVIOUS_ID" && "$PREVIOUS_ID" != "$IMAGE_ID" ]]; then   # the previous build, now untagged
    "${BUILDAH[@]}" rmi "$PREVIOUS_ID" >/dev/null 2>&1 || true
fi
HEALTHCHECK_JSON=$("${BUILDAH[@]}" inspect --type image "$IMAGE" \
    | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["Docker"]["config"].get("Healthcheck")))')
IMAGE_USER=$("${BUILDAH[@]}" inspect --type image --format '{{.Docker.Config.User}}' "$IMAGE")
info "built in ${BUILD_TIME} s: id ${IMAGE_ID#sha256:}, size $IMAGE_SIZE, user $IMAGE_USER"
[[ "$HEALTHCHECK_JSON" == *healthz* ]] || die "the image has no HEALTHCHECK on /healthz: $HEALTHCHECK_JSON"

# ---- 4. run -----------------------------------------------------------------------------------------
step "4/5 run: options-engine run (sim mode, shipped engine.toml) for ${RUN_SECONDS} s; probe /healthz"
# The probe runs inside the container next to the engine. The image's HEALTHCHECK command is run as well.
python3 - "$HEALTHCHECK_JSON" >"$WORK/healthcheck.sh" <<'EOF'
import json, shlex, sys
test = json.loads(sys.argv[1])["Test"]
cmd = shlex.join(test[1:]) if test[0] == "CMD" else test[1]
print(f"exec {cmd}")
EOF
cat >"$WORK/probe.sh" <<EOF
#!/bin/sh
# Runs inside the container as its user: the engine in the background, /healthz probed while it runs.
set -u
out=/probe
echo "python: \$(python -V 2>&1) at \$(readlink -f \$(command -v python))"
echo "numba cache: \$(find /opt/numba-cache -type f | wc -l) files (warmed at build)"
echo "dev packages: \$(python -c 'import importlib.util as u; print(" ".join(m for m in ("QuantLib", "scipy", "pytest", "hypothesis", "alpaca") if u.find_spec(m)) or "none")')"
echo "ca bundle: \$(sha256sum /etc/ssl/certs/ca-certificates.crt | cut -d' ' -f1)"
# stdout carries the JSON log and then the plain-text summary; the summary also goes to summary.json.
options-engine run -c /etc/options-engine/engine.toml --duration $RUN_SECONDS --summary-json "\$out/summary.json" \\
    >"\$out/engine.out" 2>"\$out/engine.err" &
pid=\$!
t0=\$(date +%s); status=none
while kill -0 "\$pid" 2>/dev/null; do
    status=\$(python -c "import urllib.request as u; r = u.urlopen('http://127.0.0.1:9464/healthz', timeout=2); print(r.status, r.read().decode().strip()[:200])" 2>/dev/null) && break
    status=none; sleep 1
done
echo "healthz: \$status (after \$((\$(date +%s) - t0)) s)"
if sh /probe/healthcheck.sh; then echo "HEALTHCHECK command: exit 0"; else echo "HEALTHCHECK command: exit \$?"; fi
wait "\$pid"; rc=\$?
echo "engine exit: \$rc"
EOF
chmod 0755 "$WORK/probe.sh"
chmod 0644 "$WORK/healthcheck.sh"
chmod 0777 "$WORK"   # the container's non-root user writes its output here
RUN_CTR=$("${BUILDAH[@]}" from "$IMAGE")
# A private network namespace with only loopback up: the engine's 127.0.0.1:9464 (and the simulator's
# ports) are its own, whatever else runs on this machine.
unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
    "${BUILDAH[@]}" run --isolation chroot -v "$WORK:/probe" "$RUN_CTR" -- sh /probe/probe.sh \
    | tee "$WORK/probe.out" | sed 's/^/    | /' || die "buildah run failed"
HEALTHZ=$(sed -n 's/^healthz: //p' "$WORK/probe.out")
HC=$(sed -n 's/^HEALTHCHECK command: //p' "$WORK/probe.out")
ENGINE_RC=$(sed -n 's/^engine exit: //p' "$WORK/probe.out")
NUMBA_CACHE=$(sed -n 's/^numba cache: //p' "$WORK/probe.out")
DEV_PACKAGES=$(sed -n 's/^dev packages: //p' "$WORK/probe.out")
IMAGE_CA=$(sed -n 's/^ca bundle: //p' "$WORK/probe.out")
BASE_CA=$(tar -xOf "$TARBALL" ./etc/ssl/certs/ca-certificates.crt | sha256sum | cut -d' ' -f1)
PYTHON=$(sed -n 's/^python: //p' "$WORK/probe.out")
SUMMARY=$(sed -n '/^run summary/,$p' "$WORK/engine.out" 2>/dev/null | grep -v '^{' || true)
JSON_STRATEGIES=$(python3 -c 'import json, sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["strategies"])))' \
    "$WORK/summary.json" 2>/dev/null || true)
failures=()
[[ "$HEALTHZ" == 200* ]] || failures+=("/healthz did not answer 200 while the engine ran (got: ${HEALTHZ:-nothing})")
[[ "$HC" == "exit 0" ]] || failures+=("the image's HEALTHCHECK command failed ($HC)")
[[ "$ENGINE_RC" == 0 ]] || failures+=("options-engine run exited ${ENGINE_RC:-?}")
grep -q '^run summary' <<<"$SUMMARY" || failures+=("no run summary printed")
[[ "$NUMBA_CACHE" != 0\ * && -n "$NUMBA_CACHE" ]] || failures+=("the Numba cache in the image is empty")
[[ "$DEV_PACKAGES" == none ]] || failures+=("dev-only packages in the image: $DEV_PACKAGES")
[[ "$IMAGE_CA" == "$BASE_CA" ]] || failures+=("the image's CA bundle is not the base's (the build's CA mount leaked)")
for s in "${STRATEGIES[@]}"; do
    grep -Eq "^  $s " <<<"$SUMMARY" || failures+=("the summary has no line for strategy $s")
    [[ " $JSON_STRATEGIES " == *" $s "* ]] || failures+=("summary.json has no strategy $s")
done
if ((${#failures[@]})); then
    echo "    engine stdout (last 30 lines):"; tail -n 30 "$WORK/engine.out" 2>/dev/null | sed 's/^/    | /'
    echo "    engine stderr (last 30 lines):"; tail -n 30 "$WORK/engine.err" 2>/dev/null | sed 's/^/    | /'
    echo "    summary:"; sed 's/^/    | /' <<<"$SUMMARY"
    for f in "${failures[@]}"; do echo "    FAIL: $f" >&2; done
    die "${#failures[@]} check(s) failed"
fi

# ---- 5. result --------------------------------------------------------------------------------------
step "5/5 result"
if [[ "$KEEP_IMAGE" != 1 ]]; then "${BUILDAH[@]}" rmi "$IMAGE" >/dev/null; fi
cat <<EOF
==== bench/container.sh result ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -m), $(nproc) CPUs) ====
commit        $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')
base image    $BASE_IMAGE  (Debian $SUITE minbase + Debian's python3), $BASE_SIZE, step ${BASE_TIME} s
python        $PYTHON
image         $IMAGE
image id      ${IMAGE_ID#sha256:}
image size    $IMAGE_SIZE  (buildah vfs storage)
build time    ${BUILD_TIME} s  (buildah bud --isolation chroot, vfs, pip from PyPI, Numba cache warmed)
user          $IMAGE_USER
numba cache   $NUMBA_CACHE
dev packages  $DEV_PACKAGES  (runtime dependencies only; the CA bundle is the base's own)
healthz       $HEALTHZ  (http://127.0.0.1:9464/healthz inside the running container)
HEALTHCHECK   $HC
engine exit   $ENGINE_RC  (options-engine run --duration $RUN_SECONDS, sim mode, shipped engine.toml)
summary:
$(sed 's/^/  /' <<<"$SUMMARY")
total time    $(($(date +%s) - T0)) s
logs          $WORK
==== OK ====
EOF
