#!/usr/bin/env bash
# Builds the container image of the `node` example without any image registry:
# a FROM-scratch image holding the release binary, the shared libraries it
# links (as ldd lists them), glibc's NSS modules for hostname lookups, and a
# minimal /etc. Works wherever a Docker engine runs, even offline.
#
#   deploy/docker/build-image.sh [IMAGE]     (default IMAGE: redhac-node:dev)
set -euo pipefail
image="${1:-redhac-node:dev}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

echo "building the node example (release)..."
cargo build --release --example node
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/node"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/rootfs/etc" "$stage/rootfs/tmp"
cp "$bin" "$stage/rootfs/redhac-node"

# Every library ldd resolves, plus the dynamic loader, at their own paths.
copy_lib() {
  local lib="$1"
  [ -e "$lib" ] || return 0
  mkdir -p "$stage/rootfs$(dirname "$lib")"
  cp -L "$lib" "$stage/rootfs$lib"
}
for lib in $(ldd "$bin" | grep -oE '/[^ ]+'); do copy_lib "$lib"; done
# Name resolution: glibc loads its NSS modules at run time, ldd does not list them.
libdir="$(dirname "$(ldd "$bin" | grep -oE '/[^ ]*libc\.so\.6')")"
for lib in "$libdir"/libnss_files.so.2 "$libdir"/libnss_dns.so.2 "$libdir"/libresolv.so.2; do copy_lib "$lib"; done
printf 'hosts: files dns\n' > "$stage/rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/:/redhac-node\nnobody:x:65534:65534:nobody:/:/redhac-node\n' > "$stage/rootfs/etc/passwd"

cat > "$stage/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
USER 65534
EXPOSE 8080 8001
ENTRYPOINT ["/redhac-node"]
DOCKERFILE

docker build -q -t "$image" "$stage"
echo "built $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
