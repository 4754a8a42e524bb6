# yggdrasil/controller — the control plane and the router (`yggdrasil start`) in one container.
# Build context: the repository root after `npm run build`, with the production node_modules that
# scripts/build-images.sh prepares in docker/.build/controller/node_modules (`npm ci --omit=dev` on
# the host, so no dev dependency and no registry access from inside the build).
#   docker build -f docker/controller.Dockerfile --build-arg BASE_IMAGE=yggdrasil/node:20 -t yggdrasil/controller .
# With DRIVER=docker it needs the Docker socket (docker-compose.yml mounts it and adds its group).
ARG BASE_IMAGE=node:20-bookworm-slim

# Stage 1: assemble /app and prove that the platform's imports resolve with production modules.
FROM ${BASE_IMAGE} AS app
LABEL io.yggdrasil.stage=app
ARG MODULES_DIR=docker/.build/controller/node_modules
WORKDIR /app
COPY package.json ./
COPY ${MODULES_DIR} ./node_modules
COPY dist ./dist
RUN node --input-type=module -e "await import('/app/dist/platform.js'); await import('/app/dist/agent/server.js')" \
 && test -f dist/cli/main.js && test -f dist/agent/healthcheck.js

# Stage 2: the runtime image — the base, one non-root user and /app (owned by root, read-only to it).
FROM ${BASE_IMAGE}
ARG VERSION=0.0.0
LABEL org.opencontainers.image.title="yggdrasil/controller" \
      org.opencontainers.image.description="Yggdrasil controller + router (yggdrasil start)" \
      org.opencontainers.image.version="${VERSION}"
RUN groupadd --system --gid 10001 ygg \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin ygg \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/yggdrasil
COPY --from=app /app /app
WORKDIR /app
# STATE_DIR holds the API keys (auth.json): a volume in docker-compose.yml.
ENV NODE_ENV=production \
    STATE_DIR=/var/lib/yggdrasil \
    BIND_HOST=0.0.0.0 \
    LB_PORT=8080 \
    CONTROLLER_PORT=3000
USER 10001:10001
EXPOSE 8080 3000
# Healthy while the controller API answers (the router's /health is 503 until an agent is ready).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "dist/agent/healthcheck.js", "CONTROLLER_PORT"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli/main.js", "start"]
