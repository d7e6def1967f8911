#!/usr/bin/env bash
# Builds the image of `zoe relay`, which a Swarm back end runs on each user's overlay network
# (see "Several hosts" in the README): the zoe binary, stripped, with the shared libraries it
# needs, on an empty base (no shell, no package manager). No registry is needed.
#
#   deploy/relay-image.sh [BINARY] [TAG]
#
# BINARY defaults to target/release/zoe, TAG to zoe-relay:<the binary's version> (the master's
# default `relay-image`). Prints the tag. Load the image on every node (docker save | docker
# load, or push it to a registry the nodes use and give the master --relay-image and
# --allowed-registry). Every docker call runs under a timeout.
set -euo pipefail

BINARY="${1:-target/release/zoe}"
[[ -x "$BINARY" ]] || { echo "relay-image.sh: $BINARY is not an executable (cargo build --release?)" >&2; exit 1; }
TAG="${2:-}"
if [[ -z "$TAG" ]]; then
    version="$("$BINARY" --version | awk '{ print $2 }')"
    TAG="zoe-relay:$version"
fi

ctx="$(mktemp -d /tmp/zoe-relay-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root"
# The binary, without debug information.
strip -o "$ctx/root/zoe" "$BINARY" 2>/dev/null || cp "$BINARY" "$ctx/root/zoe"
chmod 0755 "$ctx/root/zoe"
# Its shared libraries and the dynamic loader, at their own paths.
ldd "$BINARY" | awk '/=> \// { print $3 } /^[ \t]*\// { print $1 }' | while read -r lib; do
    mkdir -p "$ctx/root$(dirname "$lib")"
    cp -L "$lib" "$ctx/root$lib"
done
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
USER 65534:65534
LABEL zoe.image=relay
EXPOSE 7700
ENTRYPOINT ["/zoe", "relay"]
DOCKERFILE
if ! out="$(timeout -k 10 600 docker build -q -t "$TAG" "$ctx" 2>&1)"; then
    echo "relay-image.sh: docker build failed: $out" >&2
    exit 1
fi
echo "$TAG"
