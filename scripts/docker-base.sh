#!/usr/bin/env bash
# Builds the local base images, without any container registry:
#   yggdrasil/debian:bookworm  debootstrap --variant=minbase bookworm, slimmed, imported with `docker import`
#   yggdrasil/node:20          that Debian + this host's Node 20 binary (stripped) in /usr/local/bin/node
# Idempotent: an image that already exists is kept unless --force is given.
# Needs root (debootstrap), docker, debootstrap and a Debian mirror: the one apt uses on this host
# (read from /etc/apt/sources.list{,.d/}), or DEBIAN_MIRROR=http://… to choose another.
# Usage: scripts/docker-base.sh [--force] [--debian-only]
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_IMAGE=${DEBIAN_IMAGE:-yggdrasil/debian:bookworm}
NODE_IMAGE=${NODE_IMAGE:-yggdrasil/node:20}
SUITE=bookworm
force=0
debian_only=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --debian-only) debian_only=1 ;;
    -h | --help)
      sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "docker-base.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

log() { printf '[docker-base] %s\n' "$*"; }
die() {
  printf '[docker-base] error: %s\n' "$*" >&2
  exit 1
}
old_debian=''
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
size_of() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1000000 }'; }

command -v docker >/dev/null || die 'docker is not installed (apt-get install docker.io)'
docker info >/dev/null 2>&1 || die 'the Docker daemon does not answer (start dockerd)'

# The first URI of the enabled apt sources (one-line .list or deb822 .sources) whose suites include $1.
apt_mirror_for() {
  local want=$1 f
  local files=()
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  awk -v want="$want" '
    function flush() {
      if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " want " ") && uris != "" && found == "") {
        split(uris, u, " "); found = u[1]
      }
      types = ""; suites = ""; uris = ""; enabled = ""
    }
    FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
    deb822 && /^[ \t]*$/ { flush(); next }
    deb822 && /^[ \t]*#/ { next }
    deb822 && /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0; next }
    deb822 && /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0; next }
    deb822 && /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0; next }
    deb822 && /^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = tolower($0); next }
    !deb822 && $1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == want && found == "") found = $i
    }
    END { flush(); if (found != "") print found }
  ' "${files[@]}"
}

build_debian() {
  local mirror security updates rootfs t0
  mirror=${DEBIAN_MIRROR:-$(apt_mirror_for "$SUITE")}
  [ -n "$mirror" ] || die "no apt source for '$SUITE' in /etc/apt/sources.list{,.d/}; set DEBIAN_MIRROR"
  security=$(apt_mirror_for "$SUITE-security")
  updates=$(apt_mirror_for "$SUITE-updates")
  command -v debootstrap >/dev/null || die 'debootstrap is not installed (apt-get install debootstrap)'
  [ "$(id -u)" = 0 ] || die 'debootstrap needs root'
  rootfs=$(mktemp -d /tmp/ygg-rootfs.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$rootfs'" EXIT
  t0=$SECONDS
  log "debootstrap --variant=minbase $SUITE from $mirror"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -30 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    die 'debootstrap failed'
  }
  rm -f "$rootfs.log"
  log "debootstrap done in $((SECONDS - t0)) s; slimming"

  # apt sources: the same mirrors as this host.
  {
    echo "deb $mirror $SUITE main"
    [ -n "$updates" ] && echo "deb $updates $SUITE-updates main"
    [ -n "$security" ] && echo "deb $security $SUITE-security main"
  } >"$rootfs/etc/apt/sources.list"
  # Keep later apt installs small, as Debian's own container images do: no docs, man pages, locales,
  # recommends, and no package cache or lists left in a layer.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
  cat >"$rootfs/etc/apt/apt.conf.d/docker-slim" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  # No service may start while a package is installed inside `docker build`.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda}/* 2>/dev/null || true
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/* \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old
  mkdir -p "$rootfs/var/lib/apt/lists/partial" "$rootfs/var/cache/apt/archives/partial"
  # Docker provides these at run time.
  rm -f "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf"
  : >"$rootfs/etc/machine-id"

  log "docker import → $DEBIAN_IMAGE"
  old_debian=$(docker image inspect -f '{{.Id}}' "$DEBIAN_IMAGE" 2>/dev/null || true)
  tar --numeric-owner --xattrs -C "$rootfs" -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["bash"]' \
      --message "debootstrap --variant=minbase $SUITE" \
      - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  log "$DEBIAN_IMAGE built in $((SECONDS - t0)) s, $(size_of "$DEBIAN_IMAGE")"
}

build_node() {
  local node ver ctx t0
  node=$(command -v node) || die 'node is not installed on this host'
  node=$(readlink -f "$node")
  ver=$("$node" -p 'process.versions.node')
  [ "${ver%%.*}" = 20 ] || die "the host's node is $ver; $NODE_IMAGE needs Node 20"
  t0=$SECONDS
  ctx=$(mktemp -d /tmp/ygg-node.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$ctx'" EXIT
  # The host binary carries debug info; stripped it is ~13 MB smaller and runs the same.
  if command -v strip >/dev/null; then
    strip -o "$ctx/node" "$node"
  else
    cp "$node" "$ctx/node"
  fi
  "$ctx/node" -e '' || die 'the stripped node binary does not run'
  log "docker build → $NODE_IMAGE (node $ver)"
  local old new
  old=$(docker image inspect -f '{{.Id}}' "$NODE_IMAGE" 2>/dev/null || true)
  docker build -q -f docker/node.Dockerfile \
    --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" --build-arg "NODE_VERSION=$ver" \
    -t "$NODE_IMAGE" "$ctx" >/dev/null 2>"$ctx.err" || {
    cat "$ctx.err" >&2
    rm -f "$ctx.err"
    die "docker build of $NODE_IMAGE failed"
  }
  rm -f "$ctx.err"
  new=$(docker image inspect -f '{{.Id}}' "$NODE_IMAGE")
  [ -n "$old" ] && [ "$old" != "$new" ] && { docker rmi "$old" >/dev/null 2>&1 || true; }
  rm -rf "$ctx"
  trap - EXIT
  docker run --rm "$NODE_IMAGE" node -e 'process.exit(process.versions.node.startsWith("20.") ? 0 : 1)' ||
    die "$NODE_IMAGE does not run node 20"
  log "$NODE_IMAGE built in $((SECONDS - t0)) s, $(size_of "$NODE_IMAGE")"
}

if [ $force = 0 ] && image_exists "$DEBIAN_IMAGE"; then
  log "$DEBIAN_IMAGE exists ($(size_of "$DEBIAN_IMAGE")); --force rebuilds it"
else
  build_debian
  force=1 # a new Debian base means a new node image on top of it
fi
[ $debian_only = 1 ] && exit 0
if [ $force = 0 ] && image_exists "$NODE_IMAGE"; then
  log "$NODE_IMAGE exists ($(size_of "$NODE_IMAGE")); --force rebuilds it"
else
  build_node
fi
# The Debian image replaced by --force goes once the node image no longer builds on it.
if [ -n "$old_debian" ] && [ "$old_debian" != "$(docker image inspect -f '{{.Id}}' "$DEBIAN_IMAGE")" ]; then
  docker rmi "$old_debian" >/dev/null 2>&1 || true
fi
