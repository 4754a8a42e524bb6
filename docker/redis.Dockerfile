# yggdrasil/redis — Debian's redis-server on the local Debian base, for docker-compose.ci.yml.
# Runs as the package's redis user, in the foreground, data in /data (as the upstream image does).
# Protected mode is off because it listens only on the compose network; set a password in production.
#   docker build -t yggdrasil/redis - < docker/redis.Dockerfile
ARG BASE_IMAGE=yggdrasil/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data \
 && redis-server --version
USER redis
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["redis-cli", "ping"]
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", \
     "--daemonize", "no", "--save", "60", "1000", "--appendonly", "no"]
