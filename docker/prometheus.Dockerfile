# yggdrasil/prometheus — Debian's Prometheus on the local Debian base, for docker-compose.ci.yml.
# Same entry point and defaults as the upstream image (config /etc/prometheus/prometheus.yml, data in
# /prometheus), so the compose files can mount deploy/prometheus/prometheus.yml into either.
#   docker build -t yggdrasil/prometheus - < docker/prometheus.Dockerfile
ARG BASE_IMAGE=yggdrasil/debian:bookworm
FROM ${BASE_IMAGE}
# libjs-moment-timezone (a dependency, for the web UI) brings 212 MB of raw tz data the UI never
# loads (it uses moment-timezone-with-data.min.js): dpkg leaves it out.
RUN echo 'path-exclude /usr/share/javascript/moment-timezone/data/*' >/etc/dpkg/dpkg.cfg.d/ygg-prometheus \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown prometheus:prometheus /prometheus \
 && prometheus --version
USER prometheus
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", \
     "--web.console.libraries=/usr/share/prometheus/console_libraries", \
     "--web.console.templates=/usr/share/prometheus/consoles"]
