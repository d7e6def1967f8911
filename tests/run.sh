#!/usr/bin/env bash
# The whole test suite, as CI runs it: prepares what the tests need (a reachable Docker Engine,
# the local test image), then runs every test of the workspace. Extra arguments go to
# `cargo test` (e.g. `tests/run.sh -- api::`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
    echo "run.sh: the Docker Engine does not answer; trying to start it" >&2
    (service docker start || (nohup dockerd >/tmp/dockerd.log 2>&1 &)) >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "run.sh: Docker is unreachable; the Docker tests cannot run" >&2; exit 1; }
fi
bash tests/images/build.sh
# The analytics applications' images (Spark, Jupyter) for tests/integration/analytics.rs:
# built from Debian and PyPI packages once (about 4.5 minutes), then found in the engine's cache.
bash apps/build-images.sh
# The web interface's browser test drives Debian's headless Chromium through chromedriver; the
# load test uses Debian's wrk.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1; then
    echo "run.sh: installing chromium, chromium-driver and wrk for the browser and load tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core wrk
fi
# The directory tests (tests/integration/directory.rs) run Debian's OpenLDAP slapd, an instance of
# their own on free ports, and its ldap-utils; their test CA is made with the openssl command.
if ! command -v slapd >/dev/null 2>&1 && ! [ -x /usr/sbin/slapd ] || ! command -v ldapmodify >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
    echo "run.sh: installing slapd, ldap-utils and openssl for the directory tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends slapd ldap-utils openssl
fi
# The usage metrics test (tests/integration/usage_metrics.rs) runs Debian's Prometheus, an
# instance of its own on a free port with its own storage, scraping a real master.
if ! command -v prometheus >/dev/null 2>&1; then
    echo "run.sh: installing prometheus for the usage metrics test" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends prometheus
fi

# The fuzz test (tests/integration/fuzz.rs) runs schemathesis from a virtualenv under target/.
if [ ! -x target/st-venv/bin/schemathesis ]; then
    echo "run.sh: installing schemathesis into target/st-venv for the fuzz test" >&2
    python3 -m venv target/st-venv && target/st-venv/bin/pip install -q schemathesis
fi

# The Swarm tests (tests/integration/swarm.rs) run on a three-node Docker Swarm of
# Docker-in-Docker nodes: the node image is built once from Debian packages and cached in the
# engine; the cluster comes up here (a few seconds) and goes, with everything it made, when this
# script exits, whatever the outcome.
# Workspace images a test left mounted (a test killed before its clean-up) are unmounted too.
leftover_mounts() {
    local m
    { awk '{print $5}' /proc/self/mountinfo | grep -E "^(${TMPDIR:-/tmp}/zoe-it-|$PWD/)" | sort -r || true; } |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}
# The folders tests and benchmarks made under the temporary directory (`zoe-it-<pid>-<tag>-<n>`,
# `zoe-<tag>-<pid>`, `zoe-bench-<pid>-<tag>`), once the process that made them is gone and
# nothing is mounted in them: those of earlier runs before the tests, this run's after them when
# it passed (a failed run's stay for a look, until the next run).
stale_dirs() {
    local tmp="${TMPDIR:-/tmp}" d name pid mounts
    mounts=$'\n'$(awk '{print $5}' /proc/self/mountinfo)$'\n'
    for d in "$tmp"/zoe-*; do
        [ -d "$d" ] || continue
        name=${d##*/}
        if [[ $name =~ ^zoe-(it|bench)-([0-9]+)- ]]; then pid=${BASH_REMATCH[2]}
        elif [[ $name =~ ^zoe-.*-([0-9]+)$ ]]; then pid=${BASH_REMATCH[1]}
        else continue; fi
        [ -e "/proc/$pid" ] && continue
        case $mounts in *$'\n'"$d"$'\n'* | *$'\n'"$d"/*) continue ;; esac
        rm -rf --one-file-system "$d" || true
    done
}
stale_dirs
trap 'status=$?; { leftover_mounts || true; }; [ "$status" -ne 0 ] || stale_dirs || true; bash tests/cluster/cluster.sh down >/dev/null 2>&1 || echo "run.sh: the test cluster could not be torn down; run tests/cluster/cluster.sh down" >&2' EXIT
bash tests/cluster/cluster.sh up >/dev/null
bash tests/cluster/cluster.sh load zoe-test-busybox:latest

# Formatted and linted, always: an unformatted file or a clippy warning fails the run.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

cargo test --workspace --locked "$@"
