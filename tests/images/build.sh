#!/usr/bin/env bash
# Builds the local test image `zoe-test-busybox:latest` used by the Docker integration tests.
#
# No registry is reachable from the test machines, so the image is made from Debian's static
# busybox: a root folder with /bin/busybox and its applet links, /tmp and a minimal /etc/passwd,
# imported with `docker import`. Idempotent: does nothing when the image already exists
# (pass --force to rebuild it).
set -euo pipefail

IMAGE="zoe-test-busybox:latest"
FORCE=0
if [[ "${1:-}" == "--force" ]]; then
    FORCE=1
fi

if ! command -v docker >/dev/null 2>&1; then
    echo "build.sh: the docker command is not installed" >&2
    exit 1
fi
if ! docker info >/dev/null 2>&1; then
    echo "build.sh: the Docker Engine does not answer (is dockerd running? is DOCKER_HOST right?)" >&2
    exit 1
fi

if [[ "$FORCE" -eq 0 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "build.sh: image $IMAGE already exists, nothing to do"
    exit 0
fi

BUSYBOX=/bin/busybox
if [[ ! -x "$BUSYBOX" ]]; then
    echo "build.sh: $BUSYBOX is missing, installing Debian's busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends busybox-static
fi
if [[ ! -x "$BUSYBOX" ]]; then
    echo "build.sh: $BUSYBOX is still missing after installing busybox-static" >&2
    exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "build.sh: $BUSYBOX is dynamically linked; the image needs a static busybox (busybox-static)" >&2
    exit 1
fi

ROOT="$(mktemp -d)"
trap 'rm -rf "$ROOT"' EXIT

mkdir -p "$ROOT/bin" "$ROOT/sbin" "$ROOT/usr/bin" "$ROOT/usr/sbin" "$ROOT/etc" "$ROOT/tmp" \
    "$ROOT/root" "$ROOT/var/www" "$ROOT/mnt/workspace"
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
chmod 0755 "$ROOT/bin/busybox"

count=0
while IFS= read -r applet; do
    [[ -z "$applet" || "$applet" == "busybox" ]] && continue
    ln -sf /bin/busybox "$ROOT/bin/$applet"
    count=$((count + 1))
done < <("$BUSYBOX" --list)

cat > "$ROOT/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$ROOT/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP

tar -C "$ROOT" -c . | docker import --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
echo "build.sh: imported $IMAGE from $BUSYBOX ($("$BUSYBOX" | head -n 1 | cut -d' ' -f1-2), $count applets in /bin)"
docker image inspect --format 'build.sh: {{.Id}} {{.Size}} bytes' "$IMAGE"
