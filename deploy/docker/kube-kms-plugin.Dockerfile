# kube-kms-plugin image (the Kubernetes KMS v2 plugin, deploy/kube-kms-plugin/static-pod.yaml). Build from the
# repository root:
#   docker build -f deploy/docker/kube-kms-plugin.Dockerfile -t kms-kube-kms-plugin:0.1.0 .
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
# npm ci builds the workspace's one native addon (pkcs11js, hsm-worker's) even though the plugin never loads it.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.base.json ./
COPY patches ./patches
COPY packages ./packages
COPY services ./services
COPY bench ./bench
RUN npm ci --no-audit --no-fund
# Generated code is committed (packages/proto/src/gen), so no buf step here.
RUN npx tsc -b services/kube-kms-plugin && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/packages ./packages
COPY --from=build /src/services/kube-kms-plugin ./services/kube-kms-plugin
# The static pod sets the user (root without capabilities: the socket's host directory is root's).
ENTRYPOINT ["node", "services/kube-kms-plugin/dist/main.js"]
