#!/usr/bin/env bash
# Builds the Docker images of Zoe's analytics applications (apps/*.json) from Debian and PyPI
# packages only; no container registry is needed:
#
#   zoe-base:bookworm                        debootstrap minbase + python3, python3-venv,
#                                            ca-certificates, trimmed, `docker import`ed
#   zoe-spark:$PYSPARK_VERSION  (+ :latest)  Debian's OpenJDK 17 JRE + PyPI's pyspark in a venv
#                                            (standalone master, worker, spark-submit), the
#                                            entrypoint for arbitrary uids, the word count job
#   zoe-jupyter:$JUPYTER_TAG    (+ :latest)  JupyterLab on top of zoe-spark
#
# Usage: apps/build-images.sh [--force]
#
# Cached: an image is skipped when `docker image inspect` finds it and its `zoe.build-hash`
# label matches the current build files (a hash of the build context, the pinned versions and
# the parent image's id), so editing a file under apps/images/ rebuilds what depends on it. The
# base image is never re-imported unless --force is given: re-importing gives it a new id, which
# invalidates every image built on it. --force rebuilds everything from scratch (no layer cache)
# and removes the images it replaced.
#
# Every docker command runs under `timeout`, one at a time (the engine on the build machines is
# old and may deadlock under concurrent calls). Build contexts live in a temporary folder that is
# removed on exit; builds use --force-rm so that failed steps leave no containers behind.
set -euo pipefail

# --- Pinned versions and names ---------------------------------------------------------------
PYSPARK_VERSION="4.3.0"        # PyPI pyspark (an sdist with the Spark jars, ~456 MB)
JUPYTERLAB_VERSION="4.6.6"     # PyPI jupyterlab
DEBIAN_SUITE="bookworm"        # Python 3.11 (pyspark 4 needs >= 3.10), openjdk-17

BASE_IMAGE="zoe-base:${DEBIAN_SUITE}"
SPARK_REPO="zoe-spark"
SPARK_TAG="${PYSPARK_VERSION}"
JUPYTER_REPO="zoe-jupyter"
JUPYTER_TAG="${JUPYTERLAB_VERSION}-spark${PYSPARK_VERSION}"

# Timeouts in seconds (bounded; override from the environment if a mirror is slow).
T_QUICK="${ZOE_BUILD_T_QUICK:-60}"             # inspect, tag, rm, info
T_DEBOOTSTRAP="${ZOE_BUILD_T_DEBOOTSTRAP:-900}"
T_IMPORT="${ZOE_BUILD_T_IMPORT:-600}"
T_BUILD="${ZOE_BUILD_T_BUILD:-2400}"           # one `docker build` (the pyspark download is big)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGES_DIR="$HERE/images"
HOST_CA_DIR="/usr/local/share/ca-certificates"

FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-images.sh: unknown argument: $arg (usage: $0 [--force])" >&2; exit 2 ;;
    esac
done

say() { echo "build-images.sh: $*"; }
die() { echo "build-images.sh: error: $*" >&2; exit 1; }

# `timeout` with a hard kill shortly after the polite TERM.
dk() { local t="$1"; shift; timeout --kill-after=20 "$t" docker "$@"; }

# Runs the command "$@" and prints how long it took, under the label $1; returns its status.
# (Only for commands and the small helpers below: a function run as `f || ...` loses `set -e`.)
timed() {
    local label="$1"; shift
    local start=$SECONDS rc=0
    say "$label ..."
    "$@" || rc=$?
    if [[ "$rc" -eq 0 ]]; then
        say "$label: done in $((SECONDS - start)) s"
    else
        say "$label: FAILED after $((SECONDS - start)) s"
    fi
    return "$rc"
}

# Runs "$@" with its output in the log file $1; shows the end of the log if it fails.
logged() {
    local log="$1"; shift
    local rc=0
    "$@" >"$log" 2>&1 || rc=$?
    if [[ "$rc" -ne 0 ]]; then
        echo "build-images.sh: '$1' failed (exit $rc); the end of its output:" >&2
        tail -n 40 "$log" | sed 's/^/    /' >&2
    fi
    return "$rc"
}

# `docker build "$@"` (legacy builder, under timeout) showing only its steps; the whole output
# goes to the log file $1, whose end is shown if the build fails.
docker_build() {
    local log="$1"; shift
    local rc=0
    DOCKER_BUILDKIT=0 timeout --kill-after=30 "$T_BUILD" docker build "$@" 2>&1 | tee "$log" |
        { grep --line-buffered -E '^(Step [0-9]+/[0-9]+ :|Successfully built)' | cut -c1-110 |
          sed 's/^/    /' || true; } || rc=$?
    if [[ "$rc" -ne 0 ]]; then
        echo "build-images.sh: docker build failed (exit $rc); the end of its output:" >&2
        tail -n 40 "$log" | sed 's/^/    /' >&2
    fi
    return "$rc"
}

# --- Temporary folder, removed on exit (even when a mount was left behind) -------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/zoe-build-images.XXXXXX")"
cleanup() {
    local rc=$?
    # debootstrap mounts /proc and /sys in its target and may leave them mounted if it fails:
    # unmount everything below the folder before removing it, and never cross into a mount.
    if [[ -d "$WORK" ]]; then
        awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
        rm -rf --one-file-system "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Preconditions ----------------------------------------------------------------------------
command -v docker >/dev/null 2>&1 || die "the docker command is not installed"
dk "$T_QUICK" info >/dev/null 2>&1 ||
    die "the Docker Engine does not answer (is dockerd running? is DOCKER_HOST right?)"

# Image id of $1, or nothing when it does not exist.
image_id() { dk "$T_QUICK" image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
# Label $2 of image $1, or nothing.
image_label() {
    dk "$T_QUICK" image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true
}

# Images replaced by a --force rebuild, removed at the end (newest first) if nothing uses them.
REPLACED=()
remember_replaced() {
    local old="$1" new
    new="$(image_id "$2")"
    if [[ -n "$old" && "$old" != "$new" ]]; then REPLACED+=("$old"); fi
}

# The Debian mirror: the first `URIs:` of the host's deb822 sources, else deb.debian.org.
debian_mirror() {
    local uri=""
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        uri="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)"
    fi
    echo "${ZOE_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

# The folder $1 as the image $BASE_IMAGE (a single pipeline: its status is the function's).
import_rootfs() {
    tar --numeric-owner -C "$1" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
        dk "$T_IMPORT" import \
            --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            --change "ENV LANG=C.UTF-8" \
            --change "LABEL zoe.image=base zoe.debian-suite=$DEBIAN_SUITE" \
            --change 'CMD ["/bin/bash"]' \
            --message "debootstrap --variant=minbase $DEBIAN_SUITE, trimmed" - "$BASE_IMAGE" >/dev/null
}

# --- 1. The base image ------------------------------------------------------------------------
build_base() {
    local root="$WORK/rootfs" mirror security
    mirror="$(debian_mirror)"
    security="${ZOE_DEBIAN_SECURITY_MIRROR:-${mirror%/debian}/debian-security}"

    if ! command -v debootstrap >/dev/null 2>&1; then
        timed "installing debootstrap (apt-get)" logged "$WORK/apt.log" bash -c \
            'export DEBIAN_FRONTEND=noninteractive
             timeout 300 apt-get update &&
             timeout 300 apt-get install -y --no-install-recommends debootstrap' ||
            die "cannot install debootstrap"
    fi

    timed "debootstrap $DEBIAN_SUITE (minbase) from $mirror" logged "$WORK/debootstrap.log" \
        timeout --kill-after=20 "$T_DEBOOTSTRAP" debootstrap --variant=minbase \
        --include=python3,python3-venv,ca-certificates "$DEBIAN_SUITE" "$root" "$mirror" ||
        die "debootstrap failed"

    say "trimming the root filesystem ($(du -sm "$root" | cut -f1) MB before)"
    # APT sources for the builds on top (updates and security too), no recommends.
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $DEBIAN_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$root/etc/apt/apt.conf.d/90zoe-no-recommends"
    # Packages installed later skip documentation, manuals and translations too (licences kept).
    cat >"$root/etc/dpkg/dpkg.cfg.d/90zoe-excludes" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
    find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
        "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/debootstrap
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
        -exec rm -rf {} + 2>/dev/null || true
    # Docker provides these at run time.
    rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
    : >"$root/etc/machine-id"
    say "trimmed to $(du -sm "$root" | cut -f1) MB"

    local old
    old="$(image_id "$BASE_IMAGE")"
    timed "docker import $BASE_IMAGE" import_rootfs "$root" || die "docker import failed"
    remember_replaced "$old" "$BASE_IMAGE"
    rm -rf --one-file-system "$root"
}

# --- 2 and 3. Images built with `docker build` --------------------------------------------------
# build_image NAME TAG CONTEXT_SRC PARENT [BUILD_ARG...]: builds NAME:TAG (and NAME:latest) from
# the Dockerfile in CONTEXT_SRC on top of the image PARENT, unless it is current.
build_image() {
    local name="$1" tag="$2" src="$3" parent="$4"; shift 4
    local ref="$name:$tag" ctx="$WORK/context-$name" parent_id hash old arg
    parent_id="$(image_id "$parent")"
    [[ -n "$parent_id" ]] || die "the parent image $parent of $ref is missing"

    # The build context: the image's files and the host's extra CA certificates (needed when
    # HTTPS leaves the machine through an intercepting proxy; usually an empty folder).
    rm -rf "$ctx"
    mkdir -p "$ctx/ca-certificates"
    cp -R "$src/." "$ctx/"
    if compgen -G "$HOST_CA_DIR/*.crt" >/dev/null; then
        cp "$HOST_CA_DIR"/*.crt "$ctx/ca-certificates/"
    fi

    # What the image is made of: every context file, the build arguments and the parent's id.
    hash="$( { (cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
               printf '%s\n' "$parent_id" "$@"; } | sha256sum | cut -c1-16)"

    old="$(image_id "$ref")"
    if [[ "$FORCE" -eq 0 && -n "$old" ]]; then
        if [[ "$(image_label "$ref" zoe.build-hash)" == "$hash" ]]; then
            say "$ref exists and is current, skipped"
            dk "$T_QUICK" tag "$ref" "$name:latest"
            return 0
        fi
        say "$ref exists but its build files changed: rebuilding"
    fi

    local build_args=(--build-arg "PARENT_IMAGE=$parent")
    for arg in "$@"; do build_args+=(--build-arg "$arg"); done
    local cache=()
    [[ "$FORCE" -eq 1 ]] && cache=(--no-cache)
    timed "docker build $ref" docker_build "$WORK/build-$name.log" --force-rm --rm "${cache[@]}" \
        "${build_args[@]}" --label "zoe.build-hash=$hash" --tag "$ref" "$ctx" ||
        die "docker build of $ref failed"
    dk "$T_QUICK" tag "$ref" "$name:latest"
    remember_replaced "$old" "$ref"
    rm -rf "$ctx"
}

# --- Main -------------------------------------------------------------------------------------
TOTAL_START=$SECONDS
STEP_START=$SECONDS
if [[ "$FORCE" -eq 0 && -n "$(image_id "$BASE_IMAGE")" ]]; then
    say "$BASE_IMAGE exists, skipped (use --force to re-import it and rebuild everything)"
else
    build_base
fi
say "step base image $BASE_IMAGE: $((SECONDS - STEP_START)) s"

STEP_START=$SECONDS
build_image "$SPARK_REPO" "$SPARK_TAG" "$IMAGES_DIR/spark" "$BASE_IMAGE" \
    "PYSPARK_VERSION=$PYSPARK_VERSION"
say "step image $SPARK_REPO:$SPARK_TAG: $((SECONDS - STEP_START)) s"

STEP_START=$SECONDS
build_image "$JUPYTER_REPO" "$JUPYTER_TAG" "$IMAGES_DIR/jupyter" "$SPARK_REPO:$SPARK_TAG" \
    "JUPYTERLAB_VERSION=$JUPYTERLAB_VERSION"
say "step image $JUPYTER_REPO:$JUPYTER_TAG: $((SECONDS - STEP_START)) s"

# Images replaced by this run, newest first, if no container or other image uses them.
# (Removing an image also removes its untagged parents: a replaced parent may be gone already.)
for (( i=${#REPLACED[@]}-1; i>=0; i-- )); do
    old="${REPLACED[$i]}"
    if [[ -z "$(image_id "$old")" ]]; then
        say "the replaced image ${old:7:12} is gone"
    elif dk "$T_QUICK" image rm "$old" >/dev/null 2>&1; then
        say "removed the replaced image ${old:7:12}"
    else
        say "kept the replaced image ${old:7:12} (a container or another image uses it)"
    fi
done

for ref in "$BASE_IMAGE" "$SPARK_REPO:$SPARK_TAG" "$JUPYTER_REPO:$JUPYTER_TAG"; do
    dk "$T_QUICK" image inspect --format "build-images.sh: {{index .RepoTags 0}} {{.Id}} {{.Size}} bytes" "$ref" |
        awk '{ printf "%s %s %s %.0f MB\n", $1, $2, substr($3, 8, 12), $4 / 1e6 }'
done
say "all images ready in $((SECONDS - TOTAL_START)) s"
