#!/usr/bin/env bash
# Builds a local stand-in for node:20-bookworm-slim where no registry is reachable: a Debian bookworm
# minbase root (debootstrap) with this machine's Node (binary, npm, corepack, headers) in /usr/local, as the
# official image lays it out. Usage: node-base.sh IMAGE_NAME (buildah's storage options in $BUILDAH_OPTS).
set -euo pipefail
image="${1:?usage: $0 IMAGE_NAME}"
read -r -a bopts <<<"${BUILDAH_OPTS:-}"
node_bin="$(readlink -f "$(command -v node)")"
node_prefix="$(dirname "$(dirname "$node_bin")")"   # /usr for Debian/NodeSource packages, /usr/local for tarballs
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

root="$(mktemp -d /var/tmp/kms-node-base.XXXXXX)"
container=""
cleanup() {
  if [[ -n "$container" ]]; then buildah "${bopts[@]}" rm "$container" >/dev/null || true; fi
  rm -rf "$root"
}
trap cleanup EXIT

debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log"; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# As debian:bookworm-slim: the three suites in deb822 form, no docs/man/locales from later installs either.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
DPKG
# As the official images: apt keeps no package caches or downloaded .debs in a layer, fetches no translations.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$root"/usr/share/{man,info,locale,groff,lintian}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/log/* "$root"/tmp/*

# Node as the official image has it: /usr/local/{bin,lib/node_modules,include/node}.
install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules" "$root/usr/local/include"
cp -a "$node_prefix/lib/node_modules/npm" "$root/usr/local/lib/node_modules/"
[[ -d "$node_prefix/lib/node_modules/corepack" ]] && cp -a "$node_prefix/lib/node_modules/corepack" "$root/usr/local/lib/node_modules/"
cp -a "$node_prefix/include/node" "$root/usr/local/include/"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
[[ -d "$root/usr/local/lib/node_modules/corepack" ]] && ln -s ../lib/node_modules/corepack/dist/corepack.js "$root/usr/local/bin/corepack"
chroot "$root" /usr/local/bin/node --version >/dev/null   # its shared libraries are all in the root

container="$(buildah "${bopts[@]}" from scratch)"
mnt="$(buildah "${bopts[@]}" mount "$container")"
cp -a "$root/." "$mnt/"
buildah "${bopts[@]}" umount "$container" >/dev/null
buildah "${bopts[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="$(node --version | sed 's/^v//')" --cmd node --os linux --arch "$(dpkg --print-architecture)" "$container"
buildah "${bopts[@]}" commit --quiet --rm "$container" "$image" >/dev/null
container=""
echo "built $image from debootstrap bookworm + node $(node --version)"
