#!/usr/bin/env bash
# End-to-end check of the cluster harness (cluster.sh), and an example of how a test uses it:
# brings the cluster up (or reuses it), loads the test image into the nodes, reaches the manager
# over TLS, runs two services on different nodes on an attachable overlay network (one serving a
# file from the shared workspace folder, the other fetching it by service name), reaches a
# host-mode published port from the host, and kills and restarts a node. Prints the timings.
#
#   tests/cluster/smoke.sh          leaves the cluster up at the end
#   tests/cluster/smoke.sh --down   tears it down at the end
#
# Services follow what works on this machine (see cluster.sh): `--endpoint-mode dnsrr`,
# `mode=host` published ports, `--no-resolve-image`, `--restart-condition none`. (The test image's
# busybox 1.35 wget crashes with -T, so the client has no timeout flag.)
set -euo pipefail
cd "$(dirname "$0")/../.."

DOWN=0
[[ "${1:-}" == "--down" ]] && DOWN=1

CLUSTER=tests/cluster/cluster.sh
IMAGE=zoe-test-busybox:latest
NET=smoke-net
PORT=18080

log() { echo "smoke.sh: $*" >&2; }
fail() {
    log "FAILED: $*"
    exit 1
}
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

bash "$CLUSTER" up >/dev/null
eval "$(bash "$CLUSTER" env)"
bash tests/images/build.sh >/dev/null
bash "$CLUSTER" load "$IMAGE"

# The manager through plain TCP (the harness) and through TLS with the client certificate (Zoe).
mgr() { timeout -k 5 30 docker -H "$ZOE_CLUSTER_MANAGER" "$@"; }
tls() {
    timeout -k 5 30 docker --tlsverify --tlscacert "$ZOE_CLUSTER_TLS_CA" \
        --tlscert "$ZOE_CLUSTER_TLS_CERT" --tlskey "$ZOE_CLUSTER_TLS_KEY" \
        -H "$ZOE_CLUSTER_MANAGER_TLS" "$@"
}
[[ "$(tls node ls -q | wc -l)" -eq 3 ]] || fail "the manager does not list 3 nodes over TLS"
if timeout 10 docker --tlsverify --tlscacert "$ZOE_CLUSTER_TLS_CA" -H "$ZOE_CLUSTER_MANAGER_TLS" \
    version >/dev/null 2>&1; then
    fail "the TLS endpoint answered a client without a certificate"
fi
log "TLS: 3 nodes listed with the client certificate; refused without it"

# Whatever happens below, the services and the network go (the cluster stays unless --down).
WORK="$ZOE_CLUSTER_WORKSPACES/smoke-$$"
cleanup() {
    mgr service rm smoke-web smoke-client >/dev/null 2>&1 || true
    # The tasks' containers must be gone before their network can go.
    for _ in $(seq 1 20); do mgr network rm "$NET" >/dev/null 2>&1 && break; sleep 0.5; done
    rm -rf "$WORK"
    if [[ "$DOWN" -eq 1 ]]; then bash "$CLUSTER" down; fi
}
trap cleanup EXIT

mkdir -p "$WORK"
MARKER="smoke marker $$ $RANDOM"
echo "$MARKER" >"$WORK/index.html"

start="$EPOCHREALTIME"
mgr network create --driver overlay --attachable "$NET" >/dev/null
common=(--detach --network "$NET" --endpoint-mode dnsrr --restart-condition none
    --no-resolve-image --replicas 1)
mgr service create "${common[@]}" --name smoke-web --constraint node.hostname==zoe-node-2 \
    --publish "mode=host,target=80,published=$PORT" \
    --mount "type=bind,source=$WORK,target=/www,readonly" \
    "$IMAGE" httpd -f -p 80 -h /www >/dev/null
mgr service create "${common[@]}" --name smoke-client --constraint node.hostname==zoe-node-3 \
    "$IMAGE" sh -c 'while true; do wget -q -O - http://smoke-web/index.html; sleep 1; done' >/dev/null

running() {
    [[ "$(mgr service ps smoke-web smoke-client --filter desired-state=running \
        --format '{{.Node}} {{.CurrentState}}' | grep -c Running)" -eq 2 ]]
}
for _ in $(seq 1 60); do running && break; sleep 0.5; done
running || fail "the two services did not reach Running: $(mgr service ps smoke-web smoke-client --no-trunc 2>&1)"
log "two services Running on zoe-node-2 and zoe-node-3 in $(since "$start") s"

ok=0
for _ in $(seq 1 20); do
    if mgr service logs --raw smoke-client 2>/dev/null | grep -qF "$MARKER"; then ok=1 && break; fi
    sleep 0.5
done
[[ "$ok" -eq 1 ]] || fail "smoke-client (zoe-node-3) did not fetch the page from smoke-web (zoe-node-2) by name"
log "overlay: zoe-node-3 fetched the workspace file from zoe-node-2 by service name"

[[ "$(curl -s --max-time 5 "http://$ZOE_CLUSTER_NODE_2:$PORT/index.html")" == "$MARKER" ]] ||
    fail "the host-mode port $PORT is not reachable at $ZOE_CLUSTER_NODE_2 from the host"
log "host-mode published port reachable from the host at $ZOE_CLUSTER_NODE_2:$PORT"

bash "$CLUSTER" kill-node 3 --wait
bash "$CLUSTER" start-node 3
bash "$CLUSTER" status >/dev/null || fail "the cluster is not healthy after node 3 came back"
log "all checks passed"
