#!/usr/bin/env bash
# Build and smoke-test the project's Dockerfile on a machine that has no Docker daemon and cannot reach
# Docker Hub, but does reach Debian's package mirrors and PyPI (this project's development machines and CI).
#
#   sudo tools/build_image_offline.sh            # engine, stand-in base, build, smoke tests
#   SKIP_SMOKE=1 tools/build_image_offline.sh    # engine, stand-in base and build only
#
# What it does, and why:
#   1. Engine. Debian bookworm's docker.io is dockerd 20.10, whose built-in BuildKit (0.8) cannot parse the
#      Dockerfile's heredoc (`COPY <<"EOF"` fails with "unknown instruction: CASE"), and the docker CLI 28 on
#      these machines needs the buildx plugin for BuildKit. So bookworm's docker.io is installed for its
#      dependencies (runc, iptables, ...) and the dockerd, containerd and docker-buildx of Debian trixie
#      (Docker 26.1, BuildKit 0.13) are unpacked beside it and run with bookworm's runc (trixie's runc needs
#      glibc 2.38). Nothing is installed from outside Debian's archive.
#   2. Base. python:3.11-slim lives on Docker Hub, so a stand-in is made with debootstrap from the Debian
#      mirror this machine's apt already uses (read from its apt sources at run time): Debian's python3.11,
#      pip and venv, with /usr/local/bin/python3.11 and python linked to /usr/bin/python3.11 as the
#      Dockerfile expects, and the slim image's dpkg/apt clean-up settings.
#   3. Build, with BuildKit 0.13's built-in Dockerfile frontend, which reads every instruction the Dockerfile
#      uses. The Dockerfile has no `# syntax=` line (it would fetch a frontend image from Docker Hub); should
#      one be added, the build uses a copy without it unless that frontend image is already loaded.
#   4. Smoke tests: airflow version, uid 50000, imports, provider registration, the CLI, and a Dask scheduler,
#      a worker and a client in three containers on the host network (127.0.0.1 only).
#
# Environment knobs: IMAGE, BASE_IMAGE, SUITE (bookworm), ENGINE_SUITE (trixie), WORK (scratch folder),
# DASK_PORT (8786), REBUILD_BASE=1 (rebuild the stand-in), SKIP_SMOKE=1, STANDIN_EXTRA_CA=0 (see step 2).
# The dockerd this starts is left running (log: $WORK/dockerd.log); the smoke-test containers are removed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-airflow-imaging-privacy:0.1.0}
BASE_IMAGE=${BASE_IMAGE:-local/python:3.11-slim-debian}
SUITE=${SUITE:-bookworm}
ENGINE_SUITE=${ENGINE_SUITE:-trixie}
WORK=${WORK:-/var/tmp/airflow-imaging-privacy-image}
DASK_PORT=${DASK_PORT:-8786}
ROOTFS=$WORK/rootfs
ENGINE=$WORK/engine
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { printf '\n== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# Echo a command, then run it (the evidence file quotes these lines).
run() { printf '$ %s\n' "$*" >&2; "$@"; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get, debootstrap, dockerd)"
mkdir -p "$WORK"

# The URI that this machine's apt sources give for a suite (deb822 *.sources first, then one-line *.list).
# Nothing is hard-coded: the stand-in base uses whatever Debian mirror the host is set up with.
debian_mirror() {
    local suite=$1 f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # One deb822 stanza at a time (blank lines end them); the first enabled "deb" stanza with the suite.
        uri=$(awk -v s="$suite" '
            function flush() { if (deb && found && enabled && uri != "") { print uri; done = 1; exit }
                               uri = ""; deb = 0; found = 0; enabled = 1 }
            BEGIN { enabled = 1 }
            /^[[:space:]]*$/ { flush(); next }
            /^Enabled:/ && tolower($2) == "no" { enabled = 0 }
            /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) found = 1 }
            END { if (!done) flush() }' "$f")
        if [ -n "$uri" ]; then echo "$uri"; return 0; fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # "deb [options] URI SUITE COMPONENTS..."
        uri=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v s="$suite" '$1 == "deb" && $3 == s { print $2; exit }')
        if [ -n "$uri" ]; then echo "$uri"; return 0; fi
    done
    return 1
}

MIRROR=$(debian_mirror "$SUITE") || die "no apt source for $SUITE in /etc/apt (the stand-in base needs one)"
SECURITY_MIRROR=$(debian_mirror "$SUITE-security" || true)

# ---- 1. the engine -------------------------------------------------------------------------------------
log "1. Docker engine"
export DEBIAN_FRONTEND=noninteractive
# BuildKit for `docker build` whichever docker CLI this is (CLI 23+ uses the buildx plugin for it).
export DOCKER_BUILDKIT=1
if ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null || ! command -v iptables >/dev/null; then
    run apt-get update -qq
    run apt-get install -y -qq docker.io debootstrap >/dev/null
fi

# trixie's engine and buildx, downloaded with a private apt configuration (the host's sources are untouched).
if [ ! -x "$ENGINE/usr/sbin/dockerd" ] || [ ! -x "$ENGINE/usr/libexec/docker/cli-plugins/docker-buildx" ]; then
    apt_dir=$WORK/apt-$ENGINE_SUITE
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
    echo "deb [signed-by=$KEYRING] $MIRROR $ENGINE_SUITE main" > "$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
              -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root)
    run apt-get "${apt_opts[@]}" update -qq
    (cd "$apt_dir" && run apt-get "${apt_opts[@]}" download docker.io containerd docker-buildx)
    rm -rf "$ENGINE"
    for deb in "$apt_dir"/*.deb; do dpkg-deb -x "$deb" "$ENGINE"; done
fi
# The docker CLI looks for plugins here (among other places); an existing working buildx is kept.
if ! docker buildx version >/dev/null 2>&1; then
    mkdir -p /usr/local/lib/docker/cli-plugins
    ln -sf "$ENGINE/usr/libexec/docker/cli-plugins/docker-buildx" /usr/local/lib/docker/cli-plugins/docker-buildx
fi

start_dockerd() {
    # PATH: trixie's dockerd, containerd and shims first; runc comes from bookworm (/usr/sbin).
    PATH="$ENGINE/usr/sbin:$ENGINE/usr/bin:$PATH" nohup dockerd "$@" > "$WORK/dockerd.log" 2>&1 &
    local pid=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    echo "dockerd $* did not come up; its last lines:" >&2
    tail -n 15 "$WORK/dockerd.log" >&2
    kill "$pid" 2>/dev/null || true
    return 1
}

if docker info >/dev/null 2>&1; then
    echo "a Docker daemon is already running: using it"
else
    # The plain daemon first; then without iptables and the bridge; then the vfs storage driver.
    start_dockerd ||
        start_dockerd --iptables=false --bridge=none ||
        start_dockerd --iptables=false --bridge=none --storage-driver=vfs ||
        die "dockerd cannot run here (see $WORK/dockerd.log)"
fi
server=$(docker version --format '{{.Server.Version}}')
[ "${server%%.*}" -ge 23 ] || die "dockerd $server embeds a BuildKit too old for the Dockerfile's heredoc; stop it and rerun"
run docker version --format 'client {{.Client.Version}}, server {{.Server.Version}}'
run docker buildx version

# ---- 2. the stand-in for python:3.11-slim ---------------------------------------------------------------
log "2. Stand-in base image $BASE_IMAGE (Debian $SUITE)"
if [ "${REBUILD_BASE:-0}" = 1 ] || ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    rm -rf "$ROOTFS"
    run debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log"
    # The slim image's dpkg and apt settings: no docs, man pages or locales; no package caches kept.
    cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
EOF
    cat > "$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'APT::AutoRemove::SuggestsImportant "false";' > "$ROOTFS/etc/apt/apt.conf.d/docker-autoremove-suggests"
    echo 'Acquire::Languages "none";' > "$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
    # The same mirror as the host, so the Dockerfile's `apt-get install tini` works inside the build.
    rm -f "$ROOTFS/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: %s\n' \
            "$MIRROR" "$SUITE" "$SUITE" "$KEYRING"
        if [ -n "$SECURITY_MIRROR" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: %s\n' \
                "$SECURITY_MIRROR" "$SUITE" "$KEYRING"
        fi
    } > "$ROOTFS/etc/apt/sources.list.d/debian.sources"
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    run chroot "$ROOTFS" apt-get update -qq
    run chroot "$ROOTFS" apt-get install -y -qq --no-install-recommends \
        python3.11 python3-pip python3-venv ca-certificates > "$WORK/chroot-apt.log"
    # Where the official image has its interpreter; the Dockerfile names /usr/local/bin/python3.11.
    for name in python3.11 python3 python; do ln -sf /usr/bin/python3.11 "$ROOTFS/usr/local/bin/$name"; done
    # The official image's Python is not "externally managed": `python -m pip install` works as root.
    rm -f "$ROOTFS/usr/lib/python3.11/EXTERNALLY-MANAGED"
    # A TLS-inspecting egress proxy (as on these machines) signs PyPI with a CA of its own, listed in
    # /usr/local/share/ca-certificates. pip and uv inside the build must trust it, and the Dockerfile takes
    # no build-time certificate, so the stand-in base trusts it (and so does the image built on it: this is a
    # stand-in artefact; the official base has no such CA). STANDIN_EXTRA_CA=0 leaves it out.
    if [ "${STANDIN_EXTRA_CA:-1}" = 1 ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
        chroot "$ROOTFS" update-ca-certificates > /dev/null
    fi
    chroot "$ROOTFS" apt-get clean
    # What debootstrap installed before the dpkg excludes existed: keep only the copyright files.
    find "$ROOTFS/usr/share/doc" -depth -mindepth 2 ! -type d ! -name copyright -delete
    find "$ROOTFS/usr/share/doc" -depth -mindepth 2 -type d -empty -delete
    rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
        "$ROOTFS"/usr/share/locale/*
    : > "$ROOTFS/etc/resolv.conf"    # Docker supplies its own at run time
    chroot "$ROOTFS" python --version
    chroot "$ROOTFS" python -m pip --version
    # SSL_CERT_FILE: uv reads its own root store unless told to use the system bundle.
    tar -C "$ROOTFS" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["python3"]' - "$BASE_IMAGE" > /dev/null
fi
run docker image ls "$BASE_IMAGE"

# ---- 3. the build -------------------------------------------------------------------------------------
log "3. Build $IMAGE"
dockerfile=$REPO/Dockerfile
syntax=$(sed -n '1s/^# *syntax=\(.*\)$/\1/p' "$dockerfile")
if [ -n "$syntax" ] && ! docker image inspect "$syntax" >/dev/null 2>&1; then
    # Docker Hub is out of reach: drop only the first line, the frontend directive.
    echo "the frontend image $syntax is not loaded and Docker Hub is out of reach: building without line 1"
    sed '1d' "$dockerfile" > "$WORK/Dockerfile"
    dockerfile=$WORK/Dockerfile
fi
# Proxies from this environment reach the build as Docker's predefined build arguments (values unprinted).
proxy_args=()
for v in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    if [ -n "${!v:-}" ]; then proxy_args+=(--build-arg "$v"); fi
done
if [ -n "${PIP_INDEX_URL:-}${UV_INDEX_URL:-}${UV_DEFAULT_INDEX:-}" ]; then
    echo "note: a package index is set in this environment; the Dockerfile has no hook for one, so the build uses PyPI"
fi
cd "$REPO"
start=$(date +%s)
build=(docker build --progress=plain --network host "${proxy_args[@]}"
       --build-arg "PYTHON_IMAGE=$BASE_IMAGE" -f "$dockerfile" -t "$IMAGE" .)
printf '$ %s\n' "${build[*]}" >&2
"${build[@]}" > "$WORK/build.log" 2>&1 ||
    { tail -n 40 "$WORK/build.log"; die "build failed (full log: $WORK/build.log)"; }
echo "built in $(( $(date +%s) - start )) s (full log: $WORK/build.log)"
grep -E '^#[0-9]+ (\[|exporting|naming)|Resolved|Installed [0-9]+ packages|DONE [0-9.]+s$' "$WORK/build.log" | tail -n 40
run docker image ls "$IMAGE"

[ "${SKIP_SMOKE:-0}" = 1 ] && exit 0

# ---- 4. smoke tests -----------------------------------------------------------------------------------
log "4. Smoke tests"
run docker run --rm "$IMAGE" version
run docker run --rm "$IMAGE" bash -c id
[ "$(docker run --rm "$IMAGE" bash -c 'id -u'):$(docker run --rm "$IMAGE" bash -c 'id -g')" = 50000:50000 ] ||
    die "the image does not run as 50000:50000"
run docker run --rm "$IMAGE" bash -c 'exec airflow version'
run docker run --rm "$IMAGE" python -c 'import sys, privacy_core, privacy_core.imaging.compute, operators.get_provider_info as g
info = g.get_provider_info()
print(sys.version.split()[0], privacy_core.__file__, info["package-name"], info["versions"])'
run docker run --rm "$IMAGE" airflow providers list > "$WORK/providers.txt"
grep -i imaging "$WORK/providers.txt" || die "the provider is not registered"
run docker run --rm "$IMAGE" imaging-privacy --help

# Dask: scheduler, worker (started by a nanny) and client in three containers, loopback only.
scheduler=aip-smoke-dask-scheduler
worker=aip-smoke-dask-worker
cleanup() { docker rm -f "$scheduler" "$worker" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
run docker run -d --name "$scheduler" --network host "$IMAGE" \
    dask scheduler --host 127.0.0.1 --port "$DASK_PORT" --dashboard-address 127.0.0.1:0 > /dev/null
run docker run -d --name "$worker" --network host "$IMAGE" \
    dask worker "tcp://127.0.0.1:$DASK_PORT" --host 127.0.0.1 --nworkers 1 --nthreads 2 \
    --dashboard-address 127.0.0.1:0 > /dev/null
# (grep without -q: with pipefail, -q's early exit would fail the pipeline through SIGPIPE)
registered() { docker logs "$scheduler" 2>&1 | grep 'Register worker' > /dev/null; }
for _ in $(seq 60); do
    if registered; then break; fi
    sleep 1
done
registered || { docker logs "$worker" 2>&1 | tail; die "no worker registered"; }
cat > "$WORK/dask_smoke.py" <<EOF
import os, sys
import numpy as np
import dask.array as da
from privacy_core.imaging.compute import DaskConfig, dask_client, WORKER_MALLOC_ENV
from privacy_core.pixels import reference
from privacy_core.pixels._pixelate import pixelate

img = np.random.default_rng(7).integers(0, 4096, size=(4, 64, 64), dtype=np.uint16)
with dask_client(DaskConfig(address="tcp://127.0.0.1:$DASK_PORT")) as client:
    print("workers:", len(client.scheduler_info()["workers"]), "client python", sys.version.split()[0])
    out = pixelate(da.from_array(img, chunks=(1, 64, 64)), 8).compute()
    same = bool(np.array_equal(out, reference.pixelate(img, 8)))
    print("pixelate on the cluster == numpy reference:", out.dtype, out.shape, same)

    def probe():
        import dask, privacy_core
        return {k: os.environ.get(k) for k in WORKER_MALLOC_ENV} | {
            "pre-spawn-environ": dask.config.get("distributed.nanny.pre-spawn-environ"),
            "privacy_core": privacy_core.__file__, "python": sys.version.split()[0], "uid": os.getuid()}

    facts = client.run(probe)
    for addr, worker_facts in facts.items():
        print("worker", addr)
        for k, v in worker_facts.items():
            print("  ", k, "=", v)
    applied = all(f[k] == v for f in facts.values() for k, v in WORKER_MALLOC_ENV.items())
    print("malloc env applied by the nanny:", applied)
    sys.exit(0 if same and applied else 1)
EOF
run docker run --rm -i --network host "$IMAGE" python - < "$WORK/dask_smoke.py"
run docker run --rm "$IMAGE" bash -c 'cat /opt/venv/etc/dask/imaging-privacy.yaml'

log "Image size"
run docker images "$IMAGE"
echo "done: $IMAGE built and smoke-tested; dockerd left running"
