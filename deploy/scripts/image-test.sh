#!/usr/bin/env bash
# Builds the kms-api and hsm-worker (dev target, SoftHSM2) images from deploy/docker/*.Dockerfile with buildah
# and runs them with runc the way deploy/k8s's Deployment does: uid 10001, read-only root filesystem, no
# capabilities, the worker's socket in a shared directory, migrations by the kms-api image first. Then the
# Python smoke client and Encrypt -> restart of both containers -> Decrypt. Fails on a compiler, Python or a
# devDependency in a runtime image, a container process running as root, or a container that fails to
# start (a file missing at run time). Run as root on Debian 12 (no Docker engine needed); deploy/README.md.
#
# Environment: IMAGE_TEST_CACHE (default /var/cache/kms-image-test: buildah's storage and the base stand-in),
# IMAGE_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432; a scratch database is made and dropped),
# NODE_IMAGE (a base image already in the cache's storage instead of the local stand-in),
# IMAGE_TEST_KEEP=1 (keep the built images in the cache's storage).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/deploy/scripts/image-test"
cache="${IMAGE_TEST_CACHE:-/var/cache/kms-image-test}"
postgres="${IMAGE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
export PGOPTIONS='--client-min-messages=warning'
api_image=localhost/kms-api:image-test
worker_image=localhost/kms-hsm-worker:image-test-dev
export BUILDAH_OPTS="--root $cache/storage --runroot $cache/run --storage-driver vfs"
read -r -a bopts <<<"$BUILDAH_OPTS"
b() { buildah "${bopts[@]}" "$@"; }

started=$SECONDS
section() { printf '\n---- %s (%ss)\n' "$*" "$((SECONDS - started))"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# ---- preflight ------------------------------------------------------------------------------------------
[[ $EUID -eq 0 ]] || fail "run as root (buildah's chroot isolation and runc need it)"
for tool in buildah runc debootstrap node psql protoc grpc_python_plugin /usr/bin/python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install buildah runc debootstrap ...; deploy/README.md)"
done
/usr/bin/python3 -c 'import grpc' 2>/dev/null || fail "python3-grpcio is missing"
mkdir -p "$cache"
# One run at a time per cache: the image names and buildah's storage are shared.
exec 9>"$cache/lock"
flock 9

work="$(mktemp -d /tmp/kms-image-test.XXXXXX)"
runc_root="$work/runc"
prefix="kms-image-test-$$"
database="kms_image_test_$$"
containers=()       # runc container ids, for cleanup
working=()          # buildah working containers (the images' roots), for cleanup
cleanup() {
  local status=$?
  set +e
  for id in "${containers[@]}"; do runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1; done
  for c in "${working[@]}"; do b umount "$c" >/dev/null 2>&1; b rm "$c" >/dev/null 2>&1; done
  psql "$postgres/postgres" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1
  if [[ "${IMAGE_TEST_KEEP:-}" != 1 ]]; then b rmi -f "$api_image" "$worker_image" >/dev/null 2>&1; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Leftovers of a run that was killed before its cleanup (the storage is this script's own).
b rm --all >/dev/null 2>&1 || true

# ---- base image -----------------------------------------------------------------------------------------
section "base image"
if [[ -n "${NODE_IMAGE:-}" ]]; then
  base="$NODE_IMAGE"
else
  # The stand-in for node:20-bookworm-slim, cached per Node version and recipe.
  recipe="$(sha256sum "$here/node-base.sh" | cut -c1-12)"
  base="localhost/kms-node-base:$(node --version)-$recipe"
  if b inspect --type image "$base" >/dev/null 2>&1; then
    echo "cached: $base"
  else
    for old in $(b images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/kms-node-base:' || true); do b rmi -f "$old" >/dev/null; done
    "$here/node-base.sh" "$base"
  fi
fi

# ---- build ----------------------------------------------------------------------------------------------
# RUN steps see the machine's CA for npm when it has one (a TLS-inspecting proxy): mounted over the base's
# empty /usr/local/etc (npm's global npmrc), so no file of it lands in an image.
build_mounts=()
ca="${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null || true)}"
if [[ -n "$ca" && "$ca" != null && -f "$ca" ]]; then
  mkdir -p "$work/npm-etc"
  cp "$ca" "$work/npm-etc/build-ca.crt"
  echo "cafile=/usr/local/etc/build-ca.crt" >"$work/npm-etc/npmrc"
  build_mounts=(-v "$work/npm-etc:/usr/local/etc:ro")
fi
build() { # NAME DOCKERFILE TAG [bud options]
  local name="$1" dockerfile="$repo/deploy/docker/$2" tag="$3" t0=$SECONDS
  shift 3
  if ! b bud --isolation chroot --network host --pull=never --layers=false "${build_mounts[@]}" \
      --build-arg NODE_IMAGE="$base" --ignorefile "$dockerfile.dockerignore" -f "$dockerfile" -t "$tag" "$@" \
      "$repo" >"$work/build-$name.log" 2>&1; then
    tail -40 "$work/build-$name.log"
    fail "building $name"
  fi
  echo "built $tag in $((SECONDS - t0)) s"
}
section "build"
build kms-api kms-api.Dockerfile "$api_image"
build hsm-worker hsm-worker.Dockerfile "$worker_image" --target dev

echo "image sizes (uncompressed):"
b images --format '  {{.Name}}:{{.Tag}}  {{.Size}}' | grep -E "kms-api:image-test|kms-hsm-worker:image-test|$base" || true

# ---- what the runtime images hold -----------------------------------------------------------------------
root_of() { # IMAGE -> prints a working container's root (the image's files, a copy of its own)
  local c
  c="$(b from --pull=never --quiet "$1")"
  working+=("$c")
  b mount "$c"
}
section "image contents"
api_root="$(root_of "$api_image")"
worker_root="$(root_of "$worker_image")"
forbidden_packages="gcc g++ cpp make python3 python3-minimal binutils libc6-dev build-essential"
for pair in "kms-api:$api_root" "hsm-worker:$worker_root"; do
  name="${pair%%:*}" root="${pair#*:}"
  installed="$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Package} ${db:Status-Status}\n' $forbidden_packages 2>/dev/null \
    | awk '$2 == "installed" {print $1}' || true)"
  [[ -z "$installed" ]] || fail "$name image has build tools installed: $installed"
  for f in gcc g++ cc c++ make python3 ld as; do
    [[ ! -e "$root/usr/bin/$f" ]] || fail "$name image has /usr/bin/$f"
  done
  node "$here/dev-dependencies.js" "$repo/package-lock.json" "$root/app" >"$work/dev-$name.txt" \
    || fail "$name image has devDependencies: $(tr '\n' ' ' <"$work/dev-$name.txt")"
  echo "$name: no compiler, no Python, no devDependencies"
done
for image in "$api_image" "$worker_image"; do
  user="$(b inspect --type image --format '{{.OCIv1.Config.User}}' "$image")"
  [[ "$user" == 10001:10001 ]] || fail "$image runs as '$user', not 10001:10001"
done
# Workspace links an image carries without their target: reported, not failed (a service that needed one
# fails to start below).
for pair in "kms-api:$api_root" "hsm-worker:$worker_root"; do
  for link in "${pair#*:}"/app/node_modules/@kms/*; do
    [[ -e "$link" ]] || echo "note: ${pair%%:*} image: node_modules/@kms/$(basename "$link") -> $(readlink "$link") is absent"
  done
done

# ---- run ------------------------------------------------------------------------------------------------
env_of() { b inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$1" | sed '/^$/d'; }
mapfile -t api_env < <(env_of "$api_image")
mapfile -t worker_env < <(env_of "$worker_image")
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api_port="$(free_port)"
health_port="$(free_port)"

# Volumes as the dev overlay has them: the emptyDir worker-socket (world-writable root), the token PVC
# (owned by the fsGroup 10001), the PIN Secret (files 0440, group 10001).
mkdir -p "$work/socket" "$work/tokens" "$work/pin-init" "$work/pin"
chmod 0777 "$work/socket"
chown 10001:10001 "$work/tokens"
chmod 0700 "$work/tokens"
pin="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
so_pin="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf %s "$pin" >"$work/pin/pin"
printf %s "$pin" >"$work/pin-init/pin"
printf %s "$so_pin" >"$work/pin-init/so-pin"
chgrp 10001 "$work"/pin/* "$work"/pin-init/*
chmod 0440 "$work"/pin/* "$work"/pin-init/*
database_url="$postgres/$database"
psql "$postgres/postgres" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database" >/dev/null

run() { # NAME detach|wait ROOT ENV_ARRAY_NAME [--env K=V | --mount S:D[:ro]]... -- ARGS...
  local name="$1" mode="$2" root="$3" id="$prefix-$1" bundle="$work/bundles/$1"
  local -n image_env="$4"
  shift 4
  local options=()
  for e in "${image_env[@]}"; do options+=(--env "$e"); done
  mkdir -p "$bundle"
  node "$here/oci-config.js" "$bundle/config.json" --root "$root" --cwd /app "${options[@]}" "$@"
  runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1 || true
  containers+=("$id")
  if [[ "$mode" == detach ]]; then
    runc --root "$runc_root" run --detach --bundle "$bundle" "$id" >>"$work/$name.log" 2>&1 </dev/null \
      || { cat "$work/$name.log"; fail "$name did not start"; }
  else
    runc --root "$runc_root" run --bundle "$bundle" "$id" >>"$work/$name.log" 2>&1 </dev/null \
      || { cat "$work/$name.log"; fail "$name exited with an error"; }
    runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1 || true
    echo "$name: done"
  fi
}
state_of() { runc --root "$runc_root" state "$prefix-$1" 2>/dev/null | node -e 'const s = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(s.status, s.pid)'; }
stop() { # NAME: SIGTERM, as the kubelet does, then delete
  local id="$prefix-$1"
  runc --root "$runc_root" kill "$id" TERM 2>/dev/null || true
  for _ in $(seq 1 100); do [[ "$(state_of "$1")" == running* ]] || break; sleep 0.2; done
  runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1
  echo "$1: stopped"
}
running_as_10001() { # NAME: every process of the container (its pid 1 and descendants) has uid and gid 10001
  local pid status pids frontier
  read -r status pid < <(state_of "$1")
  [[ "$status" == running ]] || { cat "$work/$1.log"; fail "$1 is $status"; }
  pids="$pid" frontier="$pid"
  while [[ -n "$frontier" ]]; do
    frontier="$(for p in $frontier; do pgrep -P "$p" || true; done)"
    pids+=" $frontier"
  done
  for p in $pids; do
    local uid gid
    uid="$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$p/status")"
    gid="$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$p/status")"
    [[ "$uid" == "10001 10001 10001 10001" && "$gid" == "10001 10001 10001 10001" ]] \
      || fail "$1: process $p runs with uid $uid gid $gid"
    grep -q '^CapEff:[[:space:]]*0*$' "/proc/$p/status" || fail "$1: process $p has capabilities"
  done
  echo "$1: $(wc -w <<<"$pids") process(es), all uid/gid 10001, no capabilities"
}

socket_mount="$work/socket:/run/kms"
worker_args=(--mount "$socket_mount" --mount "$work/tokens:/var/lib/softhsm/tokens" --mount "$work/pin:/etc/kms/pkcs11:ro"
  --env KMS_WORKER_SOCKET=/run/kms/worker/hsm-worker.sock --env KMS_DATA_DIR=/tmp/kms --env KMS_PKCS11_TOKEN_LABEL=kms
  --env KMS_PKCS11_PIN_FILE=/etc/kms/pkcs11/pin --env KMS_LOG_LEVEL=info --env KMS_PKCS11_CALL_MODE=inline
  --env KMS_CREATE_ROOT_KEY=true -- node services/hsm-worker/dist/main.js)
# Plaintext in dev mode: the Python smoke client speaks plaintext (the manifests' TLS is checked by
# test/integration/deploy.test.ts). The health listener is the probes' port, as in the Deployment.
api_args=(--mount "$socket_mount" --env KMS_LISTEN="127.0.0.1:$api_port" --env KMS_HEALTH_LISTEN="127.0.0.1:$health_port"
  --env KMS_WORKER_SOCKET=/run/kms/worker/hsm-worker.sock --env KMS_DATA_DIR=/tmp/kms --env DATABASE_URL="$database_url"
  --env KMS_INSECURE_DEV_MODE=true --env KMS_LOG_LEVEL=info -- node services/kms-api/dist/main.js)
start_worker() {
  rm -f "$work/socket/worker/hsm-worker.sock"
  run hsm-worker detach "$worker_root" worker_env "${worker_args[@]}"
  for _ in $(seq 1 150); do [[ -S "$work/socket/worker/hsm-worker.sock" ]] && break; [[ "$(state_of hsm-worker)" == running* ]] || break; sleep 0.2; done
  [[ -S "$work/socket/worker/hsm-worker.sock" ]] || { cat "$work/hsm-worker.log"; fail "hsm-worker made no socket"; }
  echo "hsm-worker: listening on its socket"
}
start_api() {
  run kms-api detach "$api_root" api_env "${api_args[@]}"
  /usr/bin/python3 "$here/client.py" health "127.0.0.1:$health_port" kms.v1.KeyManagementService \
    || { cat "$work/kms-api.log"; fail "kms-api not serving"; }
}

section "run: softhsm-init, hsm-worker, migrate, kms-api"
run softhsm-init wait "$worker_root" worker_env --mount "$work/tokens:/var/lib/softhsm/tokens" --mount "$work/pin-init:/etc/kms/pkcs11:ro" -- \
  sh -c 'softhsm2-util --show-slots | grep -q "Label:[[:space:]]*kms[[:space:]]*$" ||
    softhsm2-util --init-token --free --label kms --pin "$(cat /etc/kms/pkcs11/pin)" --so-pin "$(cat /etc/kms/pkcs11/so-pin)"'
start_worker
run migrate wait "$api_root" api_env --env DATABASE_URL="$database_url" -- node services/kms-api/dist/migrate.js
start_api
running_as_10001 hsm-worker
running_as_10001 kms-api

section "Python smoke client"
bash "$repo/examples/python/generate.sh" "$work/stubs" >/dev/null
/usr/bin/python3 "$repo/examples/python/smoke.py" "127.0.0.1:$api_port" "$work/stubs" --require-hsm | tee "$work/smoke.txt" \
  || fail "smoke client"
summary="$(tail -1 "$work/smoke.txt")"
[[ "$summary" =~ ^([0-9]+)\ passed,\ 0\ failed$ ]] && ((BASH_REMATCH[1] >= 15)) || fail "smoke client: $summary"

section "Encrypt, restart kms-api and hsm-worker, Decrypt"
/usr/bin/python3 "$here/client.py" encrypt "127.0.0.1:$api_port" "$work/stubs" "$work/roundtrip.json"
stop kms-api
stop hsm-worker
start_worker
start_api
running_as_10001 hsm-worker
running_as_10001 kms-api
/usr/bin/python3 "$here/client.py" decrypt "127.0.0.1:$api_port" "$work/stubs" "$work/roundtrip.json"

section "reconcile from the kms-api image"
# The database and the token must agree; the token listing comes from the worker (ListTokenObjects),
# so the kms-api image needs nothing of the worker's. Exit 0: nothing unusable, stray or primary-less.
run reconcile wait "$api_root" api_env --mount "$socket_mount" --env KMS_WORKER_SOCKET=/run/kms/worker/hsm-worker.sock \
  --env DATABASE_URL="$database_url" -- node services/kms-api/dist/reconcile.js
grep -q '"ok":true' "$work/reconcile.log" || { cat "$work/reconcile.log"; fail "reconcile did not report ok"; }

# A module or file the image lacks shows as a failed start above; a lazily loaded one only in the logs.
if grep -E "MODULE_NOT_FOUND|Cannot find module|ENOENT" "$work"/{softhsm-init,hsm-worker,migrate,kms-api,reconcile}.log; then fail "a container missed a file at run time"; fi
stop kms-api
stop hsm-worker
section "image test passed"
