# yggdrasil/agent — the reference agent, one instance per container (what DRIVER=docker runs).
# Build context: the repository root after `npm run build`, with the production node_modules that
# scripts/build-images.sh prepares in docker/.build/agent/node_modules (the host installs them:
# `npm ci --omit=dev`, so no dev dependency and no registry access from inside the build).
#   docker build -f docker/agent.Dockerfile --build-arg BASE_IMAGE=yggdrasil/node:20 -t yggdrasil/agent .
# Any Debian-based image with node 20 works as BASE_IMAGE (default: the official slim image).
ARG BASE_IMAGE=node:20-bookworm-slim

# Stage 1: assemble /app and prove that every import the agent makes resolves with production modules.
FROM ${BASE_IMAGE} AS app
LABEL io.yggdrasil.stage=app
ARG MODULES_DIR=docker/.build/agent/node_modules
WORKDIR /app
COPY package.json ./
COPY ${MODULES_DIR} ./node_modules
COPY dist ./dist
RUN node --input-type=module -e "await import('/app/dist/agent/server.js'); await import('/app/dist/agent/config.js')" \
 && test -f dist/agent/main.js && test -f dist/agent/healthcheck.js

# Stage 2: the runtime image — the base, one non-root user and /app (owned by root, read-only to it).
FROM ${BASE_IMAGE}
ARG VERSION=0.0.0
LABEL org.opencontainers.image.title="yggdrasil/agent" \
      org.opencontainers.image.description="Yggdrasil reference agent (GET /health, /metrics, POST /process)" \
      org.opencontainers.image.version="${VERSION}"
RUN groupadd --system --gid 10001 ygg \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin ygg
COPY --from=app /app /app
WORKDIR /app
ENV NODE_ENV=production \
    AGENT_HOST=0.0.0.0 \
    PORT=8080
USER 10001:10001
EXPOSE 8080
# Docker waits `interval` before the first probe (no --start-interval before Engine 25): 5 s keeps
# "healthy" within ~5-10 s of start. The probe is a ~40 ms node start; a driver that health-checks
# on its own may run containers with --no-healthcheck or a longer --health-interval.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "dist/agent/healthcheck.js"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/agent/main.js"]
