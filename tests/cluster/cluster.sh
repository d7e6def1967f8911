#!/usr/bin/env bash
# A real three-node Docker Swarm mode cluster on this one machine, for Zoe's cluster tests.
#
# Each node is a Docker-in-Docker container (image `zoe-swarm-node:1`, built here from Debian
# packages: no registry is needed) on the user bridge network `zoe-cluster`, with its own
# volume for /var/lib/docker. Node 1 is the Swarm manager, nodes 2 and 3 are workers. Every
# object is named with the `zoe-node-` or `zoe-cluster` prefix and removed by that prefix.
#
#   cluster.sh image [--force]      build the node image (skipped when it exists)
#   cluster.sh up                   start the cluster (idempotent); prints the endpoints
#   cluster.sh load [--node N] IMAGE...
#                                   copy images from the host engine into every node (or node N)
#   cluster.sh kill-node N [--wait] `docker kill` node N (simulated node loss); with --wait,
#                                   until the manager reports it Down
#   cluster.sh start-node N         start node N again and wait until it is Ready
#   cluster.sh status [--stats]     nodes as the host and the manager see them (exit 1 if not healthy)
#   cluster.sh down [--all]         remove everything the harness made (--all: the workspaces too)
#   cluster.sh env                  shell lines to `eval` in a test: endpoints, node IPs, TLS files
#
# Settings (environment):
#   ZOE_CLUSTER_WORKSPACES  host folder bind-mounted at the same path in every node
#                           (default /tmp/zoe-cluster-workspaces)
#   ZOE_CLUSTER_TLS         folder for the throwaway CA and the client certificate
#                           (default /tmp/zoe-cluster-tls)
#   ZOE_CLUSTER_SOCKETS     folder of the nodes' engine sockets, N/docker.sock for node N
#                           (default /tmp/zoe-cluster-sockets)
#   ZOE_CLUSTER_SUBNET      the nodes' /24 (default 10.77.0.0/24; nodes at .11, .12, .13)
#   ZOE_CLUSTER_ADDR_POOL   Swarm's default address pool for overlay networks (default 10.78.0.0/16)
#   ZOE_CLUSTER_MIRROR      Debian mirror for the image build (default: the host's apt source)
#
# Endpoints: every node's engine answers the harness on a unix socket that the node's folder
# under ZOE_CLUSTER_SOCKETS brings to the host (unix://$ZOE_CLUSTER_SOCKETS/N/docker.sock); no
# node has a plain TCP port, so no container on the cluster can reach an engine's API (a plain
# port on a node address is root on that node for anyone who reaches it, tenants included).
# Node 1 also answers TLS with client-certificate verification on tcp://NODE1:2376 (for Zoe).
#
# Machine facts this follows: /work/shared/reference/multi-host-cluster.md (no --privileged,
# no IPVS: services need `--endpoint-mode dnsrr` and `mode=host` published ports, no registry:
# images come in with `load`). Every docker call runs under `timeout`, one at a time: the host
# engine is shared and old.
set -euo pipefail

readonly PROG="cluster.sh"
readonly IMAGE="zoe-swarm-node:1"
readonly NETWORK="zoe-cluster"
readonly NODE_PREFIX="zoe-node-"
readonly NODES=(1 2 3)
# Every object the harness creates carries this label too (removal still goes by name prefix, so
# that a half-built object from an interrupted run is found as well).
readonly LABEL="zoe.cluster.harness=1"

WORKSPACES="${ZOE_CLUSTER_WORKSPACES:-/tmp/zoe-cluster-workspaces}"
TLS_DIR="${ZOE_CLUSTER_TLS:-/tmp/zoe-cluster-tls}"
SOCKETS="${ZOE_CLUSTER_SOCKETS:-/tmp/zoe-cluster-sockets}"
SUBNET="${ZOE_CLUSTER_SUBNET:-10.77.0.0/24}"
ADDR_POOL="${ZOE_CLUSTER_ADDR_POOL:-10.78.0.0/16}"
readonly MTU=1400
readonly TLS_PORT=2376
# Where a node sees its folder of ZOE_CLUSTER_SOCKETS (bind-mounted), and its socket there.
readonly NODE_SOCKET_DIR="/zoe-harness"
# Where node 1 sees the TLS folder (bind-mounted read-only).
readonly NODE_TLS_DIR="/etc/zoe-cluster-tls"
# Serialises the subcommands that change things: tests running in parallel may all call `up`.
readonly LOCK_FILE="/tmp/zoe-cluster.lock"

# Timeouts in seconds: engine API calls are short; image builds and image copies are long.
readonly T_API=30
readonly T_RUN=60
readonly T_BUILD=1800
readonly T_COPY=1200

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

log() { echo "$PROG: $*" >&2; }
die() { log "error: $*"; exit 1; }

# A monotonic-enough clock in seconds with decimals, and the time since a mark.
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
# `past START SECONDS`: whether more than SECONDS have gone by since START.
past() { awk -v a="$1" -v b="$EPOCHREALTIME" -v l="$2" 'BEGIN { exit !(b - a > l) }'; }

# `hdocker SECONDS ARGS...`: the host engine, under a timeout (SIGKILL 5 s after SIGTERM).
hdocker() {
    local t="$1"
    shift
    timeout -k 5 "$t" docker "$@"
}

# `ndocker N ARGS...`: node N's engine through its socket, under the API timeout. TLS settings a
# caller may have exported for the manager must not leak into these calls.
ndocker() {
    local n="$1"
    shift
    env -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH -u DOCKER_TLS -u DOCKER_CONTEXT -u DOCKER_HOST \
        timeout -k 5 "$T_API" docker -H "$(node_socket "$n")" "$@"
}

# The harness's endpoint of node N's engine.
node_socket() { echo "unix://$SOCKETS/$1/docker.sock"; }

# `tlsdocker ARGS...`: the manager's TLS endpoint with the client certificate.
tlsdocker() {
    env -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH -u DOCKER_TLS -u DOCKER_CONTEXT -u DOCKER_HOST \
        timeout -k 5 "$T_API" docker --tlsverify --tlscacert "$TLS_DIR/ca.pem" \
        --tlscert "$TLS_DIR/cert.pem" --tlskey "$TLS_DIR/key.pem" \
        -H "tcp://$(node_ip 1):$TLS_PORT" "$@"
}

node_name() { echo "${NODE_PREFIX}$1"; }
node_volume() { echo "${NODE_PREFIX}$1-lib"; }
# The first three octets of the /24 (checked by check_settings).
subnet_base() { local s="${SUBNET%/*}"; echo "${s%.*}"; }
node_ip() { echo "$(subnet_base).$((10 + $1))"; }
gateway_ip() { echo "$(subnet_base).1"; }

check_node_arg() {
    local n="${1:-}"
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > ${#NODES[@]})); then
        die "node number must be 1 to ${#NODES[@]}, got '${n}'"
    fi
}

# `wait_until SECONDS WHAT COMMAND...`: polls COMMAND every half second until it succeeds;
# fails (returns 1) after SECONDS.
wait_until() {
    local limit="$1" what="$2" start
    shift 2
    start="$(now)"
    while ! "$@" >/dev/null 2>&1; do
        if past "$start" "$limit"; then
            log "timed out after ${limit} s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

# `wait_engine N SECONDS`: until node N's engine answers; fails at once if the node container
# stops meanwhile (its dockerd died), with the end of its log.
wait_engine() {
    local n="$1" limit="$2" start
    start="$(now)"
    until engine_answers "$n"; do
        if ! container_running "$n"; then
            log "$(node_name "$n") stopped while its engine was starting; the end of its log:"
            hdocker "$T_API" logs --tail 15 "$(node_name "$n")" 2>&1 | sed 's/^/    /' >&2 || true
            return 1
        fi
        if past "$start" "$limit"; then
            log "timed out after ${limit} s waiting for the engine of $(node_name "$n")"
            return 1
        fi
        sleep 0.5
    done
}

# Takes the harness lock (fd 9) for subcommands that change things.
take_lock() {
    exec 9>"$LOCK_FILE"
    if ! flock -n 9; then
        log "another $PROG is running; waiting for it"
        flock -w 900 9 || die "could not take $LOCK_FILE within 900 s"
    fi
}

# Dotted quad to integer, and whether two CIDR blocks overlap.
ip_to_int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
cidr_overlap() {
    local n1="${1%/*}" l1="${1#*/}" n2="${2%/*}" l2="${2#*/}" len m
    [[ "$1" == */* ]] || l1=32
    [[ "$2" == */* ]] || l2=32
    len=$((l1 < l2 ? l1 : l2))
    m=$(((0xffffffff << (32 - len)) & 0xffffffff))
    ((($(ip_to_int "$n1") & m) == ($(ip_to_int "$n2") & m)))
}

check_settings() {
    [[ "$SUBNET" =~ ^([0-9]{1,3}\.){3}0/24$ ]] || die "ZOE_CLUSTER_SUBNET must be a /24 like 10.77.0.0/24, got '$SUBNET'"
    [[ "$ADDR_POOL" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/16$ ]] || die "ZOE_CLUSTER_ADDR_POOL must be a /16 like 10.78.0.0/16, got '$ADDR_POOL'"
    [[ "$WORKSPACES" == /* && "$WORKSPACES" != "/" ]] || die "ZOE_CLUSTER_WORKSPACES must be an absolute folder other than /"
    [[ "$TLS_DIR" == /* && "$TLS_DIR" != "/" ]] || die "ZOE_CLUSTER_TLS must be an absolute folder other than /"
    [[ "$SOCKETS" == /* && "$SOCKETS" != "/" ]] || die "ZOE_CLUSTER_SOCKETS must be an absolute folder other than /"
}

# The subnet and the Swarm address pool must not clash with each other, with the host's routes
# or with any other network of the host engine (inside a node, Docker's own bridges use
# 172.17.0.0/16 and up, which is why the defaults are in 10.0.0.0/8). The harness's own network
# and its bridge's route do not count: `up` replaces them.
check_subnets() {
    cidr_overlap "$SUBNET" "$ADDR_POOL" && die "ZOE_CLUSTER_SUBNET $SUBNET overlaps ZOE_CLUSTER_ADDR_POOL $ADDR_POOL"
    local taken=() net sub own_dev=none
    net="$(hdocker "$T_API" network inspect --format '{{.Id}}' "$NETWORK" 2>/dev/null || true)"
    [[ -n "$net" ]] && own_dev="br-${net:0:12}"
    while read -r net; do
        [[ -z "$net" || "$net" == "$NETWORK" ]] && continue
        for sub in $(hdocker "$T_API" network inspect --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}' "$net" 2>/dev/null); do
            [[ "$sub" == *.* ]] && taken+=("$sub (docker network $net)")
        done
    done < <(hdocker "$T_API" network ls --format '{{.Name}}')
    while read -r sub _; do
        [[ "$sub" == *.*.*.* ]] && taken+=("$sub (host route)")
    done < <(ip -4 route show 2>/dev/null | grep -v -e '^default' -e " dev $own_dev ")
    local t
    for t in "${taken[@]}"; do
        for sub in "$SUBNET" "$ADDR_POOL"; do
            cidr_overlap "$sub" "${t%% *}" && die "$sub overlaps $t; choose another with ZOE_CLUSTER_SUBNET / ZOE_CLUSTER_ADDR_POOL"
        done
    done
    return 0
}

# Names of the harness's objects on the host engine, by prefix.
list_containers() { hdocker "$T_API" ps -a --format '{{.Names}}' | grep -E "^${NODE_PREFIX}" || true; }
list_volumes() { hdocker "$T_API" volume ls --format '{{.Name}}' | grep -E "^${NODE_PREFIX}" || true; }
list_networks() { hdocker "$T_API" network ls --format '{{.Name}}' | grep -E "^${NETWORK}" || true; }

container_running() {
    [[ "$(hdocker "$T_API" container inspect --format '{{.State.Running}}' "$(node_name "$1")" 2>/dev/null)" == "true" ]]
}

# The manager's view of node N ("Ready Active" when it is healthy), by hostname.
manager_node_state() {
    ndocker 1 node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}' 2>/dev/null |
        awk -v h="$(node_name "$1")" '$1 == h { print $2, $3 }'
}
node_ready() { [[ "$(manager_node_state "$1")" == "Ready Active" ]]; }
node_down() { [[ "$(manager_node_state "$1")" == Down* ]]; }
engine_answers() { ndocker "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
tls_answers() { tlsdocker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# Whether the whole cluster is up: three running node containers, every engine answering, the
# TLS endpoint answering with the client certificate, and three nodes Ready/Active.
cluster_healthy() {
    local n
    for n in "${NODES[@]}"; do container_running "$n" || return 1; done
    for n in "${NODES[@]}"; do engine_answers "$n" || return 1; done
    [[ -f "$TLS_DIR/ca.pem" && -f "$TLS_DIR/cert.pem" && -f "$TLS_DIR/key.pem" ]] || return 1
    tls_answers || return 1
    [[ "$(ndocker 1 info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' 2>/dev/null)" == "active true" ]] || return 1
    for n in "${NODES[@]}"; do node_ready "$n" || return 1; done
}

print_endpoints() {
    local n
    echo "zoe-cluster: manager $(node_socket 1) (the harness's), tcp://$(node_ip 1):$TLS_PORT (TLS, client certificate)"
    for n in "${NODES[@]}"; do
        echo "  $(node_name "$n")  $(node_ip "$n")  engine $(node_socket "$n")"
    done
    echo "  TLS files:  $TLS_DIR/{ca,cert,key}.pem"
    echo "  workspaces: $WORKSPACES (same path on every node)"
    echo "  subnet $SUBNET (MTU $MTU), Swarm address pool $ADDR_POOL"
    echo "  in a test: eval \"\$($0 env)\""
}

# ---------------------------------------------------------------------------------------------
# image: the node image, from Debian packages
# ---------------------------------------------------------------------------------------------

# The node's entry point. The node container is not privileged (the host refuses --privileged):
# /sys and the cgroup hierarchies come read-only, and it has CAP_SYS_ADMIN to remount them.
read -r -d '' ENTRY_SCRIPT <<'ENTRY' || true
#!/bin/sh
# Entry point of a Zoe test-cluster node: prepares the container for Docker-in-Docker, then
# execs dockerd with the arguments given to the container.
set -e

# /run must start empty on every start: a `docker kill` leaves dockerd's pid file and
# containerd's sockets behind in the container's own file system.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run

# /sys and the cgroup hierarchies are read-only in an unprivileged container.
mount -o remount,rw /sys || echo "zoe-node-entry: cannot remount /sys read-write" >&2
if mountpoint -q /sys/fs/cgroup; then
    mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
fi
for d in /sys/fs/cgroup/*; do
    [ -L "$d" ] && continue
    if mountpoint -q "$d"; then
        mount -o remount,bind,rw "$d" || echo "zoe-node-entry: cannot remount $d read-write" >&2
    fi
done
# cgroup v2: move this container's processes to a child group so that the controllers can be
# delegated to dockerd's groups (as moby's hack/dind does).
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
    sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
        >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
fi

exec dockerd "$@"
ENTRY

cmd_image() {
    local force=0
    case "${1:-}" in
        --force) force=1 ;;
        "") ;;
        *) die "usage: $PROG image [--force]" ;;
    esac
    build_image "$force"
}

build_image() {
    local force="$1" start old_id root mirror
    start="$(now)"
    if [[ "$force" -eq 0 ]] && hdocker "$T_API" image inspect "$IMAGE" >/dev/null 2>&1; then
        log "image $IMAGE exists, nothing to build ($(since "$start") s; --force rebuilds it)"
        return 0
    fi
    [[ "$(id -u)" -eq 0 ]] || die "building the node image needs root (debootstrap)"
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        timeout 600 apt-get update -q >/dev/null
        timeout 600 apt-get install -y -q --no-install-recommends debootstrap >/dev/null
        command -v debootstrap >/dev/null 2>&1 || die "debootstrap is still missing after apt-get install"
    fi
    mirror="${ZOE_CLUSTER_MIRROR:-}"
    if [[ -z "$mirror" && -f /etc/apt/sources.list.d/debian.sources ]]; then
        mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)"
    fi
    mirror="${mirror:-http://deb.debian.org/debian}"

    root="$(mktemp -d /tmp/zoe-node-root.XXXXXX)"
    # Whatever happens, the build root goes: unmount anything debootstrap left mounted inside
    # it first (deepest first), and never cross into another file system while removing.
    # shellcheck disable=SC2064
    trap "cleanup_root '$root'" EXIT
    trap 'exit 130' INT TERM

    log "debootstrap bookworm from $mirror into $root (takes a minute or so)"
    if ! timeout -k 10 "$T_BUILD" debootstrap --variant=minbase \
        --include=docker.io,iptables,ca-certificates,iproute2,procps \
        bookworm "$root" "$mirror" >"$root.log" 2>&1; then
        tail -n 30 "$root.log" >&2 || true
        cp "$root.log" /tmp/zoe-node-debootstrap.log 2>/dev/null || true
        die "debootstrap failed (log above; whole log in /tmp/zoe-node-debootstrap.log)"
    fi
    unmount_under "$root"

    # Trim what a node never needs: documentation, locales, package caches and lists, and the
    # device nodes (Docker gives every container its own /dev).
    local r="${root:?}"
    rm -rf "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* \
        "$r"/usr/share/locale/* "$r"/usr/share/lintian "$r"/var/cache/apt/* \
        "$r"/var/lib/apt/lists/* "$r"/var/cache/debconf/*-old "$r"/var/log/* \
        "${r:?}"/dev/* "${r:?}"/tmp/* "$r"/usr/bin/dockerd-rootless*
    printf '%s\n' "$ENTRY_SCRIPT" >"$root/usr/local/sbin/zoe-node-entry"
    chmod 0755 "$root/usr/local/sbin/zoe-node-entry"

    old_id="$(hdocker "$T_API" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
    log "importing $IMAGE"
    tar --numeric-owner -C "$root" -c . |
        hdocker "$T_BUILD" import \
            --change 'ENTRYPOINT ["/usr/local/sbin/zoe-node-entry"]' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change "LABEL $LABEL" \
            - "$IMAGE" >/dev/null
    cleanup_root "$root"
    trap - EXIT INT TERM
    # A rebuild leaves the previous image untagged: remove it unless a container still uses it.
    local new_id
    new_id="$(hdocker "$T_API" image inspect --format '{{.Id}}' "$IMAGE")"
    if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
        hdocker "$T_API" image rm "$old_id" >/dev/null 2>&1 || true
    fi
    log "built $IMAGE ($(hdocker "$T_API" image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%d MB", $1 / 1e6 }')) in $(since "$start") s"
}

unmount_under() {
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$1/" | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
}

cleanup_root() {
    [[ -n "$1" && "$1" == /tmp/zoe-node-root.* ]] || return 0
    unmount_under "$1"
    rm -rf --one-file-system "$1" "$1.log"
}

# ---------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------

# The throwaway CA, node 1's server certificate and the client certificate (PKCS#8 keys).
make_tls() {
    local d="$TLS_DIR" ip1
    ip1="$(node_ip 1)"
    mkdir -p "$d"
    chmod 0755 "$d"
    remove_tls_files
    (
        cd "$d"
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ca-key.pem 2>/dev/null
        openssl req -new -x509 -key ca-key.pem -days 30 -subj "/CN=zoe-cluster test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem 2>/dev/null

        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server-key.pem 2>/dev/null
        openssl req -new -key server-key.pem -subj "/CN=$(node_name 1)" -out server.csr 2>/dev/null
        cat >server-ext.cnf <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$ip1,DNS:$(node_name 1),IP:127.0.0.1,DNS:localhost
EOF
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
            -extfile server-ext.cnf -out server-cert.pem 2>/dev/null

        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem 2>/dev/null
        openssl req -new -key key.pem -subj "/CN=zoe-cluster client" -out client.csr 2>/dev/null
        cat >client-ext.cnf <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EOF
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
            -extfile client-ext.cnf -out cert.pem 2>/dev/null
        rm -f server.csr client.csr server-ext.cnf client-ext.cnf ca.srl
        chmod 0600 ca-key.pem server-key.pem key.pem
    )
}

# The files make_tls writes, and nothing else: ZOE_CLUSTER_TLS may point anywhere.
readonly TLS_FILES=(ca.pem ca-key.pem ca.srl server-cert.pem server-key.pem server.csr
    server-ext.cnf cert.pem key.pem client.csr client-ext.cnf)
remove_tls_files() {
    local f
    for f in "${TLS_FILES[@]}"; do rm -f "${TLS_DIR:?}/$f"; done
}

# `docker run` of node N: the flags the reference found to work without --privileged.
run_node() {
    local n="$1" name ip args=() dockerd_args=()
    name="$(node_name "$n")"
    ip="$(node_ip "$n")"
    hdocker "$T_API" volume create --label "$LABEL" "$(node_volume "$n")" >/dev/null
    args=(
        --detach --name "$name" --hostname "$name" --label "$LABEL"
        --network "$NETWORK" --ip "$ip"
        # Nothing answers on the node's 127.0.0.1:53: a registry lookup fails at once.
        --dns 127.0.0.1
        # tini as PID 1 reaps what dockerd's shims leave behind.
        --init
        --cap-add ALL --cap-drop SYS_RESOURCE
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined
        --security-opt systempaths=unconfined --cgroupns private
        # A task uses the image the node has instead of trying a registry first.
        --env DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
        # overlay2 needs a real file system under /var/lib/docker (the host uses fuse-overlayfs).
        --volume "$(node_volume "$n"):/var/lib/docker"
        --volume "$WORKSPACES:$WORKSPACES"
        # The harness's way to the node's engine: a socket in a folder of the host, never a
        # TCP port that the cluster's containers could reach.
        --volume "$SOCKETS/$n:$NODE_SOCKET_DIR"
    )
    mkdir -p "$SOCKETS/$n"
    chmod 0700 "$SOCKETS" "$SOCKETS/$n"
    rm -f "$SOCKETS/$n/docker.sock"
    dockerd_args=(-H unix:///var/run/docker.sock -H "unix://$NODE_SOCKET_DIR/docker.sock"
        --storage-driver overlay2 --mtu "$MTU")
    if [[ "$n" -eq 1 ]]; then
        args+=(--volume "$TLS_DIR:$NODE_TLS_DIR:ro")
        dockerd_args+=(-H "tcp://0.0.0.0:$TLS_PORT" --tlsverify
            --tlscacert "$NODE_TLS_DIR/ca.pem" --tlscert "$NODE_TLS_DIR/server-cert.pem"
            --tlskey "$NODE_TLS_DIR/server-key.pem")
    fi
    # docker run warns that a 127.0.0.1 resolver may fail: that is the point; show the rest.
    local out
    if ! out="$(hdocker "$T_RUN" run "${args[@]}" "$IMAGE" "${dockerd_args[@]}" 2>&1 >/dev/null)"; then
        echo "$out" >&2
        return 1
    fi
    grep -v 'Localhost DNS' <<<"$out" >&2 || true
}

# Set while `up` builds: on any failure the EXIT trap tears the half-built cluster down.
UP_BUILDING=0
up_exit_trap() {
    local rc=$?
    # A trap runs inside the redirections of the command it interrupted (often `>/dev/null
    # 2>&1`): speak on the script's own stdout and stderr, kept on fds 7 and 8 by main.
    exec 1>&7 2>&8
    if [[ "$UP_BUILDING" -eq 1 && "$rc" -ne 0 ]]; then
        log "up failed (exit $rc); last lines of each node's log:"
        local c
        for c in $(list_containers); do
            echo "--- $c" >&2
            hdocker "$T_API" logs --tail 15 "$c" 2>&1 | sed 's/^/    /' >&2 || true
        done
        log "tearing the half-built cluster down"
        teardown >/dev/null || true
    fi
    exit "$rc"
}

cmd_up() {
    [[ $# -eq 0 ]] || die "usage: $PROG up"
    local start n token
    start="$(now)"
    check_settings
    take_lock
    # Settings are checked before anything is touched: a wrong override must not tear down a
    # working cluster.
    check_subnets
    if [[ -n "$(list_containers)" ]]; then
        if cluster_healthy; then
            log "the cluster is already up and healthy ($(since "$start") s)"
            print_endpoints
            return 0
        fi
        # Also the case of a healthy cluster made with other ZOE_CLUSTER_* settings.
        log "a half-up cluster (or one with other settings) is there; tearing it down and starting again"
    fi
    # Leftovers without containers (volumes, network, TLS files) go too.
    teardown >/dev/null

    build_image 0

    UP_BUILDING=1
    trap up_exit_trap EXIT
    trap 'exit 130' INT TERM

    make_tls
    mkdir -p "$WORKSPACES"
    hdocker "$T_API" network create --driver bridge --label "$LABEL" \
        --subnet "$SUBNET" --gateway "$(gateway_ip)" \
        --opt "com.docker.network.driver.mtu=$MTU" "$NETWORK" >/dev/null
    for n in "${NODES[@]}"; do run_node "$n"; done
    log "nodes started ($(since "$start") s); waiting for their engines"
    for n in "${NODES[@]}"; do
        wait_engine "$n" 90
    done
    wait_until 30 "the TLS endpoint of $(node_name 1)" tls_answers

    ndocker 1 swarm init --advertise-addr "$(node_ip 1)" --listen-addr "$(node_ip 1):2377" \
        --default-addr-pool "$ADDR_POOL" --dispatcher-heartbeat 1s >/dev/null
    token="$(ndocker 1 swarm join-token -q worker)"
    for n in "${NODES[@]:1}"; do
        ndocker "$n" swarm join --token "$token" --advertise-addr "$(node_ip "$n")" \
            --listen-addr "$(node_ip "$n"):2377" "$(node_ip 1):2377" >/dev/null
    done
    for n in "${NODES[@]}"; do
        wait_until 60 "$(node_name "$n") to be Ready/Active" node_ready "$n"
    done
    UP_BUILDING=0
    trap - EXIT INT TERM

    log "cluster up in $(since "$start") s"
    print_endpoints
}

# ---------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------

# Removes containers (with their anonymous volumes), volumes and networks by prefix, and the
# TLS files. Sequential, each call under a timeout.
teardown() {
    local c v net
    for c in $(list_containers); do
        hdocker "$T_RUN" rm -f -v "$c" >/dev/null 2>&1 || log "could not remove container $c"
    done
    for v in $(list_volumes); do
        hdocker "$T_RUN" volume rm -f "$v" >/dev/null 2>&1 || log "could not remove volume $v"
    done
    for net in $(list_networks); do
        hdocker "$T_API" network rm "$net" >/dev/null 2>&1 || log "could not remove network $net"
    done
    if [[ -d "$TLS_DIR" ]]; then
        remove_tls_files
        rmdir "$TLS_DIR" 2>/dev/null || true
    fi
    for n in "${NODES[@]}"; do
        rm -f "$SOCKETS/$n/docker.sock"
        rmdir "$SOCKETS/$n" 2>/dev/null || true
    done
    rmdir "$SOCKETS" 2>/dev/null || true
}

cmd_down() {
    local all=0 start left
    case "${1:-}" in
        --all) all=1 ;;
        "") ;;
        *) die "usage: $PROG down [--all]" ;;
    esac
    check_settings
    start="$(now)"
    take_lock
    teardown
    if [[ "$all" -eq 1 && -d "$WORKSPACES" ]]; then
        rm -rf --one-file-system "${WORKSPACES:?}"
    fi
    left="$(list_containers; list_volumes; list_networks)"
    if [[ -n "$left" ]]; then
        die "still there after down: ${left//$'\n'/ }"
    fi
    log "down: nothing of the cluster is left ($(since "$start") s)"
}

# ---------------------------------------------------------------------------------------------
# load, kill-node, start-node, status, env
# ---------------------------------------------------------------------------------------------

cmd_load() {
    local targets=("${NODES[@]}")
    if [[ "${1:-}" == "--node" ]]; then
        check_node_arg "${2:-}"
        targets=("$2")
        shift 2
    fi
    [[ $# -ge 1 ]] || die "usage: $PROG load [--node N] IMAGE..."
    check_settings
    take_lock
    local n image id tmp start
    for n in "${targets[@]}"; do
        container_running "$n" || die "$(node_name "$n") is not running (start-node $n, or up)"
    done
    for image in "$@"; do
        start="$(now)"
        id="$(hdocker "$T_API" image inspect --format '{{.Id}}' "$image" 2>/dev/null)" ||
            die "the host engine has no image $image"
        tmp=""
        for n in "${targets[@]}"; do
            if [[ "$(ndocker "$n" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)" == "$id" ]]; then
                log "$image: $(node_name "$n") has it already"
                continue
            fi
            # Saved once, loaded into each node that lacks it.
            if [[ -z "$tmp" ]]; then
                tmp="$(mktemp /tmp/zoe-cluster-image.XXXXXX)"
                # shellcheck disable=SC2064
                trap "rm -f '$tmp'" EXIT
                hdocker "$T_COPY" save -o "$tmp" "$image"
            fi
            env -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH -u DOCKER_TLS -u DOCKER_CONTEXT -u DOCKER_HOST \
                timeout -k 5 "$T_COPY" docker -H "$(node_socket "$n")" load -q -i "$tmp" >/dev/null
            [[ "$(ndocker "$n" image inspect --format '{{.Id}}' "$image" 2>/dev/null)" == "$id" ]] ||
                die "$image did not arrive on $(node_name "$n") with id $id"
            log "$image: loaded into $(node_name "$n")"
        done
        if [[ -n "$tmp" ]]; then
            rm -f "$tmp"
            trap - EXIT
        fi
        log "$image ready on node(s) ${targets[*]} ($(since "$start") s)"
    done
}

cmd_kill_node() {
    local n="${1:-}" wait=0 start
    check_node_arg "$n"
    case "${2:-}" in
        --wait) wait=1 ;;
        "") ;;
        *) die "usage: $PROG kill-node N [--wait]" ;;
    esac
    take_lock
    [[ "$n" -ne 1 ]] || log "warning: node 1 is the only manager; the swarm has no control plane until it starts again"
    start="$(now)"
    hdocker "$T_API" kill "$(node_name "$n")" >/dev/null
    log "killed $(node_name "$n")"
    if [[ "$wait" -eq 1 && "$n" -ne 1 ]]; then
        wait_until 60 "the manager to report $(node_name "$n") Down" node_down "$n"
        log "the manager reports $(node_name "$n") Down $(since "$start") s after the kill"
    fi
}

cmd_start_node() {
    local n="${1:-}" start
    check_node_arg "$n"
    [[ $# -eq 1 ]] || die "usage: $PROG start-node N"
    check_settings
    take_lock
    start="$(now)"
    hdocker "$T_RUN" start "$(node_name "$n")" >/dev/null
    wait_engine "$n" 90
    if [[ "$n" -eq 1 ]]; then
        wait_until 30 "the TLS endpoint of $(node_name 1)" tls_answers
    fi
    local m
    for m in "${NODES[@]}"; do
        # Every node must be Ready again when the manager restarted; only N otherwise.
        [[ "$n" -eq 1 || "$m" -eq "$n" ]] || continue
        container_running "$m" || continue
        wait_until 90 "$(node_name "$m") to be Ready/Active" node_ready "$m"
    done
    log "$(node_name "$n") started and Ready in $(since "$start") s"
}

cmd_status() {
    local stats=0 n healthy=0
    case "${1:-}" in
        --stats) stats=1 ;;
        "") ;;
        *) die "usage: $PROG status [--stats]" ;;
    esac
    check_settings
    echo "containers on the host engine:"
    local any=0
    for n in "${NODES[@]}"; do
        if hdocker "$T_API" container inspect "$(node_name "$n")" >/dev/null 2>&1; then
            any=1
            hdocker "$T_API" container inspect --format \
                "  {{.Name}}  {{.State.Status}}  $(node_ip "$n")  started {{.State.StartedAt}}" \
                "$(node_name "$n")" | sed 's#  /#  #'
        else
            echo "  $(node_name "$n")  absent"
        fi
    done
    if [[ "$any" -eq 1 && "$stats" -eq 1 ]]; then
        echo "resources (docker stats):"
        local running=()
        mapfile -t running < <(list_containers)
        hdocker "$T_API" stats --no-stream --format '  {{.Name}}  mem {{.MemUsage}}  cpu {{.CPUPerc}}  pids {{.PIDs}}' \
            "${running[@]}" || true
    fi
    echo "nodes as the manager $(node_name 1) sees them:"
    if ndocker 1 node ls 2>/dev/null | sed 's/^/  /'; then
        cluster_healthy && healthy=1
    else
        echo "  (the manager does not answer)"
    fi
    if [[ "$healthy" -eq 1 ]]; then
        echo "healthy"
    else
        echo "NOT healthy"
        return 1
    fi
}

cmd_env() {
    check_settings
    local n ips=()
    for n in "${NODES[@]}"; do ips+=("$(node_ip "$n")"); done
    [[ -n "$(list_containers)" ]] || log "warning: the cluster is not up (run: $0 up)"
    printf 'export ZOE_CLUSTER_MANAGER_TLS=%q\n' "tcp://$(node_ip 1):$TLS_PORT"
    printf 'export ZOE_CLUSTER_MANAGER=%q\n' "$(node_socket 1)"
    for n in "${NODES[@]}"; do
        printf 'export ZOE_CLUSTER_NODE_%d=%q\n' "$n" "$(node_ip "$n")"
        printf 'export ZOE_CLUSTER_NODE_%d_DOCKER=%q\n' "$n" "$(node_socket "$n")"
        printf 'export ZOE_CLUSTER_NODE_%d_NAME=%q\n' "$n" "$(node_name "$n")"
    done
    printf 'export ZOE_CLUSTER_NODES=%q\n' "${ips[*]}"
    printf 'export ZOE_CLUSTER_GATEWAY=%q\n' "$(gateway_ip)"
    printf 'export ZOE_CLUSTER_TLS=%q\n' "$TLS_DIR"
    printf 'export ZOE_CLUSTER_TLS_CA=%q\n' "$TLS_DIR/ca.pem"
    printf 'export ZOE_CLUSTER_TLS_CERT=%q\n' "$TLS_DIR/cert.pem"
    printf 'export ZOE_CLUSTER_TLS_KEY=%q\n' "$TLS_DIR/key.pem"
    printf 'export ZOE_CLUSTER_WORKSPACES=%q\n' "$WORKSPACES"
    printf 'export ZOE_CLUSTER_SUBNET=%q\n' "$SUBNET"
    printf 'export ZOE_CLUSTER_ADDR_POOL=%q\n' "$ADDR_POOL"
    echo "# the docker CLI against the manager over TLS (ca.pem, cert.pem, key.pem are the names it wants):"
    echo "#   DOCKER_HOST=\$ZOE_CLUSTER_MANAGER_TLS DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=\$ZOE_CLUSTER_TLS docker node ls"
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}"
    exec 7>&1 8>&2
    [[ $# -gt 0 ]] && shift
    command -v docker >/dev/null 2>&1 || die "the docker command is not installed"
    case "$cmd" in
        env | help | -h | --help | "") ;;
        *)
            hdocker "$T_API" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
                die "the host Docker Engine does not answer (is dockerd running? is DOCKER_HOST right?)"
            ;;
    esac
    case "$cmd" in
        image) cmd_image "$@" ;;
        up) cmd_up "$@" ;;
        load) cmd_load "$@" ;;
        kill-node) cmd_kill_node "$@" ;;
        start-node) cmd_start_node "$@" ;;
        status) cmd_status "$@" ;;
        down) cmd_down "$@" ;;
        env) cmd_env "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
