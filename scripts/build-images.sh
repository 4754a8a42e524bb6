#!/usr/bin/env bash
# Builds Yggdrasil's container images locally, with no container registry:
#   yggdrasil/agent:latest       the reference agent (what DRIVER=docker runs)
#   yggdrasil/controller:latest  controller + router (`yggdrasil start`)
#   yggdrasil/nginx|prometheus|redis:latest  Debian-packaged services for docker-compose.ci.yml
# Usage: scripts/build-images.sh [agent] [controller] [services|nginx|prometheus|redis] [options]
#   no target = all of them
#   --no-compile   skip `npm run build` (dist/ is already fresh)
#   --force-base   rebuild the base images (scripts/docker-base.sh --force)
# Environment: BASE_IMAGE (node 20 image for agent/controller; default yggdrasil/node:20, made by
# scripts/docker-base.sh; node:20-bookworm-slim where a registry is reachable), DEBIAN_IMAGE (base of
# the service images; default yggdrasil/debian:bookworm), TAG (default latest).
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_BASE=yggdrasil/node:20
BASE_IMAGE=${BASE_IMAGE:-}
DEBIAN_IMAGE=${DEBIAN_IMAGE:-yggdrasil/debian:bookworm}
TAG=${TAG:-latest}
compile=1
base_flags=()
targets=()
for arg in "$@"; do
  case "$arg" in
    agent | controller | nginx | prometheus | redis) targets+=("$arg") ;;
    services) targets+=(nginx prometheus redis) ;;
    all) targets+=(agent controller nginx prometheus redis) ;;
    --no-compile) compile=0 ;;
    --force-base) base_flags+=(--force) ;;
    -h | --help)
      sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-images.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(agent controller nginx prometheus redis)
want() {
  local t
  for t in "${targets[@]}"; do [ "$t" = "$1" ] && return 0; done
  return 1
}
need_node=0
need_debian=0
{ want agent || want controller; } && need_node=1
{ want nginx || want prometheus || want redis; } && need_debian=1

# One build at a time on this machine (tests and people may start it at once).
exec 9>/tmp/yggdrasil-build-images.lock
flock 9

work=$(mktemp -d /tmp/ygg-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
version=$(node -p 'require("./package.json").version')

total=0
[ $need_node = 1 ] && total=$((total + 3)) # compile, base, production modules
[ $need_node = 0 ] && [ $need_debian = 1 ] && total=$((total + 1))
total=$((total + ${#targets[@]}))
step=0
t_step=$SECONDS
begin() {
  step=$((step + 1))
  t_step=$SECONDS
  printf '[%d/%d] %s … ' "$step" "$total" "$1"
}
done_() { printf 'done in %d s%s\n' $((SECONDS - t_step)) "${1:+ ($1)}"; }
fail() {
  printf 'FAILED after %d s\n' $((SECONDS - t_step))
  [ -n "${2:-}" ] && [ -f "$2" ] && tail -40 "$2" >&2
  echo "build-images.sh: $1" >&2
  exit 1
}
size_of() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1000000 }'; }
# `docker build` quietly, its output kept for a failure (the legacy builder: no buildx here). The image
# the tag named before is removed when nothing else uses it, so rebuilds leave no dangling images.
build() {
  local tag=$1 old new
  shift
  old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  docker build -t "$tag" "$@" >"$work/build.log" 2>&1 || return 1
  new=$(docker image inspect -f '{{.Id}}' "$tag")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
  # The legacy builder keeps each finished build stage as an untagged image: ours carry this label.
  docker image prune -f --filter label=io.yggdrasil.stage=app >/dev/null 2>&1 || true
}

command -v docker >/dev/null || {
  echo 'build-images.sh: docker is not installed (apt-get install docker.io)' >&2
  exit 1
}
docker info >/dev/null 2>&1 || {
  echo 'build-images.sh: the Docker daemon does not answer (start dockerd)' >&2
  exit 1
}
t_all=$SECONDS

if [ $need_node = 1 ]; then
  if [ $compile = 1 ]; then
    begin 'npm run build'
    npm run build --silent >"$work/tsc.log" 2>&1 || fail 'npm run build failed' "$work/tsc.log"
    done_
  else
    begin 'npm run build (skipped: --no-compile)'
    [ -f dist/agent/main.js ] || fail 'dist/ is missing: run npm run build'
    done_
  fi

  if [ -n "$BASE_IMAGE" ] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && [ ${#base_flags[@]} = 0 ]; then
    begin "base image $BASE_IMAGE (given, exists)"
    done_ "$(size_of "$BASE_IMAGE")"
  elif [ -z "$BASE_IMAGE" ] || [ "$BASE_IMAGE" = "$DEFAULT_BASE" ]; then
    BASE_IMAGE=$DEFAULT_BASE
    begin "base image $BASE_IMAGE"
    bash scripts/docker-base.sh "${base_flags[@]}" >"$work/base.log" 2>&1 ||
      fail 'scripts/docker-base.sh failed' "$work/base.log"
    done_ "$(size_of "$BASE_IMAGE")"
  else
    begin "base image $BASE_IMAGE (not here: docker build will try to pull it)"
    done_
  fi

  begin 'production node_modules (npm ci --omit=dev on the host)'
  cp package.json package-lock.json "$work/"
  (cd "$work" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error) >"$work/npm.log" 2>&1 ||
    fail 'npm ci --omit=dev failed' "$work/npm.log"
  node docker/prod-modules.mjs "$work/node_modules" docker/.build/agent/node_modules \
    dist/agent/main.js dist/agent/healthcheck.js >"$work/mods.log" 2>&1 ||
    fail 'docker/prod-modules.mjs (agent) failed' "$work/mods.log"
  node docker/prod-modules.mjs "$work/node_modules" docker/.build/controller/node_modules >>"$work/mods.log" 2>&1 ||
    fail 'docker/prod-modules.mjs (controller) failed' "$work/mods.log"
  rm -rf "$work/node_modules"
  done_ "agent $(du -sh docker/.build/agent/node_modules | cut -f1), controller $(du -sh docker/.build/controller/node_modules | cut -f1)"
fi

source_hash=''
[ $need_node = 1 ] && source_hash=$(node docker/source-hash.mjs)
for app in agent controller; do
  want "$app" || continue
  begin "yggdrasil/$app:$TAG"
  build "yggdrasil/$app:$TAG" -t "yggdrasil/$app:$version" -f "docker/$app.Dockerfile" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$version" \
    --label "io.yggdrasil.source-hash=$source_hash" . ||
    fail "docker build of yggdrasil/$app failed" "$work/build.log"
  done_ "$(size_of "yggdrasil/$app:$TAG")"
done

if [ $need_debian = 1 ]; then
  if [ $need_node = 0 ]; then
    begin "base image $DEBIAN_IMAGE"
    if docker image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1 && [ ${#base_flags[@]} = 0 ]; then
      done_ "exists, $(size_of "$DEBIAN_IMAGE")"
    else
      bash scripts/docker-base.sh --debian-only "${base_flags[@]}" >"$work/base.log" 2>&1 ||
        fail 'scripts/docker-base.sh failed' "$work/base.log"
      done_ "$(size_of "$DEBIAN_IMAGE")"
    fi
  elif ! docker image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1; then
    # BASE_IMAGE was given, so docker-base.sh has not run: the services still need the Debian base.
    bash scripts/docker-base.sh --debian-only >"$work/base.log" 2>&1 ||
      fail 'scripts/docker-base.sh failed' "$work/base.log"
  fi
fi

for svc in nginx prometheus redis; do
  want "$svc" || continue
  begin "yggdrasil/$svc:$TAG (apt-get install from $DEBIAN_IMAGE)"
  # No build context: these images are Debian packages plus configuration the compose files mount.
  build "yggdrasil/$svc:$TAG" --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" - <"docker/$svc.Dockerfile" ||
    fail "docker build of yggdrasil/$svc failed" "$work/build.log"
  done_ "$(size_of "yggdrasil/$svc:$TAG")"
done

printf 'images built in %d s:\n' $((SECONDS - t_all))
for t in "${targets[@]}"; do
  printf '  %-32s %s\n' "yggdrasil/$t:$TAG" "$(size_of "yggdrasil/$t:$TAG")"
done
