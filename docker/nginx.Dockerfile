# yggdrasil/nginx — Debian's nginx on the local Debian base, for docker-compose.ci.yml (no registry).
# Runs as www-data (Docker lets an unprivileged process bind port 80 inside a container); the
# configuration is deploy/nginx/nginx.conf, mounted by the compose file. Built with no context:
#   docker build -t yggdrasil/nginx - < docker/nginx.Dockerfile
ARG BASE_IMAGE=yggdrasil/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default \
 # a default configuration that works without root: no `user`, pid and temp files in /tmp
 && sed -i -e '/^user /d' -e 's|^pid .*|pid /tmp/nginx.pid;|' \
      -e 's|access_log .*;|access_log /dev/stdout;|' -e 's|error_log .*;|error_log /dev/stderr;|' \
      /etc/nginx/nginx.conf \
 && mkdir -p /var/lib/nginx /var/log/nginx \
 && chown -R www-data:www-data /var/lib/nginx /var/log/nginx \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log \
 && nginx -t && rm -rf /tmp/*
USER www-data
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
