# yggdrasil/node:20 — the local Debian base (scripts/docker-base.sh) plus this host's Node 20 binary.
# Built by scripts/docker-base.sh with a build context holding only the (stripped) `node` binary.
ARG BASE_IMAGE=yggdrasil/debian:bookworm
FROM ${BASE_IMAGE}
ARG NODE_VERSION=20
LABEL org.opencontainers.image.title="yggdrasil/node" \
      org.opencontainers.image.description="Debian bookworm minbase + Node.js ${NODE_VERSION} (node binary only, no npm)"
ENV NODE_VERSION=${NODE_VERSION}
COPY node /usr/local/bin/node
CMD ["node"]
