# kms-api image. Build from the repository root:
#   docker build -f deploy/docker/kms-api.Dockerfile -t kms-api:0.1.0 .
# The same image runs the migrations: node services/kms-api/dist/migrate.js (the Deployment's init container).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
# node-gyp needs a compiler for the one native addon in the workspace (pkcs11js, used by hsm-worker).
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
# Generated code is committed (packages/proto/src/gen), so no buf step here.
RUN npx tsc -b services/kms-api && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
RUN groupadd --gid 10001 kms && useradd --uid 10001 --gid kms --no-create-home --shell /usr/sbin/nologin kms
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/packages ./packages
COPY --from=build /src/services/kms-api ./services/kms-api
USER 10001:10001
EXPOSE 7300
ENTRYPOINT ["node", "services/kms-api/dist/main.js"]
