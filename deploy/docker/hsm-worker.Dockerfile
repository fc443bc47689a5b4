# hsm-worker image (the sidecar that owns the PKCS#11 module). Build from the repository root:
#   production: docker build -f deploy/docker/hsm-worker.Dockerfile --target runtime -t kms-hsm-worker:0.1.0 .
#   dev (SoftHSM2 inside): docker build -f deploy/docker/hsm-worker.Dockerfile --target dev -t kms-hsm-worker:0.1.0-dev .
# A network HSM's client library is vendor-licensed: build a derived image FROM the runtime target that adds
# it, and point KMS_PKCS11_MODULE at it (deploy/README.md).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
# The repository's .npmrc points node-gyp at Debian's Node headers (/usr); this image's Node lives in /usr/local.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.base.json ./
# patch-package applies these at npm ci (postinstall): see patches/README.md.
COPY patches ./patches
COPY packages ./packages
COPY services ./services
COPY bench ./bench
RUN npm ci --no-audit --no-fund
RUN npx tsc -b services/hsm-worker && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
RUN groupadd --gid 10001 kms && useradd --uid 10001 --gid kms --no-create-home --shell /usr/sbin/nologin kms
ENV NODE_ENV=production
# No default module: set KMS_PKCS11_MODULE (and the token label and PIN file) in the pod.
ARG PKCS11_MODULE=""
ENV KMS_PKCS11_MODULE=${PKCS11_MODULE}
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/packages ./packages
COPY --from=build /src/services/hsm-worker ./services/hsm-worker
USER 10001:10001
ENTRYPOINT ["node", "services/hsm-worker/dist/main.js"]

# Dev and test clusters only: Debian's SoftHSM2 as the PKCS#11 module. Tokens live in
# /var/lib/softhsm/tokens, which the dev overlay mounts from a volume. Debian keeps softhsm2.conf readable
# by the group softhsm only; uid 10001 is not in it (the pod sets no supplemental groups), and the file
# holds no secret, so it is made world-readable.
FROM runtime AS dev
USER root
RUN apt-get update && apt-get install -y --no-install-recommends softhsm2 && rm -rf /var/lib/apt/lists/* \
 && chmod 0755 /etc/softhsm && chmod 0644 /etc/softhsm/softhsm2.conf \
 && mkdir -p /var/lib/softhsm/tokens && chown -R 10001:10001 /var/lib/softhsm
ENV KMS_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so
USER 10001:10001
