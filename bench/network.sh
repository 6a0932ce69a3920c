#!/usr/bin/env bash
# Network benchmark for Shoal (see docs/benchmarks.md, "Network").
#
#   sudo bench/network.sh [network.py options, e.g. --reps 3 --json /tmp/net.json]
#
# What it does:
#   1. installs iperf3 and iputils-ping on the host if missing (apt-get), builds shoal +
#      shoal-agent with scripts/build.sh if a binary is missing, and builds the images
#      devbox:1 and netbench:1 (Debian 12 minbase + iperf3, iputils-ping, iproute2) into
#      target/test-images if they are not there yet;
#   2. creates a fresh network namespace shoalbench-<pid> and starts `shoal up` inside it
#      (nsenter --net, so that Shoal still sees the host's mounts), listening on 127.0.0.1:7070
#      of that namespace. Shoal's bridges, host-side veth ports and nftables table therefore live
#      in that namespace only, and `shoal node purge` at the end touches nothing else;
#   3. runs bench/network.py inside the same namespace; it creates the sandboxes and its own
#      baseline namespaces (shoalbench-<pid>-*), and deletes them again;
#   4. on every exit path (success, error, Ctrl-C, SIGTERM) the trap stops the driver (which
#      deletes its sandboxes through the API), removes any baseline namespace left, stops Shoal,
#      runs `shoal node purge` on the data dir (inside the namespace), deletes the namespace and
#      the temp dir.
#
# All benchmark traffic stays on loopback and on links between namespaces this run created.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHOAL="$ROOT/target/release/shoal"
AGENT="$ROOT/target/x86_64-unknown-linux-gnu/release/shoal-agent"
IMAGES="$ROOT/target/test-images"
PORT=7070              # on the loopback of the private namespace; do not change to a non-loopback address
NS="shoalbench-$$"     # Shoal's namespace; the driver's baseline namespaces are "$NS-*"

log() { echo "[netbench] $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  echo "bench/network.sh must run as root (namespaces, veths, nftables, runc)" >&2
  exit 1
fi
for tool in python3 ip nsenter setsid nft runc; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# ---------------------------------------------------------------- prerequisites
missing=()
command -v iperf3 >/dev/null || missing+=(iperf3)
command -v ping >/dev/null || missing+=(iputils-ping)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null
fi
if [[ ! -x "$SHOAL" || ! -x "$AGENT" ]]; then
  log "shoal binaries missing: running scripts/build.sh"
  "$ROOT/scripts/build.sh"
fi
for spec in "devbox:1:" "netbench:1:iperf3,iputils-ping,iproute2"; do
  ref="${spec%:*}"; pkgs="${spec##*:}"
  if [[ ! -f "$IMAGES/${ref%%:*}/${ref##*:}/image.json" ]]; then
    log "building image $ref (Debian 12 minbase, about a minute)"
    "$SHOAL" image build "$ref" ${pkgs:+--packages "$pkgs"} --images-dir "$IMAGES" --data-dir /nonexistent
  fi
done

# ---------------------------------------------------------------- run, with cleanup on every path
TMP="$(mktemp -d /tmp/shoal-netbench.XXXXXX)"
DATA="$TMP/data"
SHOAL_LOG="$TMP/shoal.log"
SHOAL_PID=""
PY_PID=""
NS_MADE=""
unset SHOAL_IMAGES_DIR SHOAL_OCI_RUNTIME SHOAL_DATA_DIR SHOAL_LISTEN SHOAL_URL SHOAL_CONFIG SHOAL_AGENT_BIN SHOAL_MTU
export SHOAL_API_KEY="netbench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$DATA"

stop_pid() {  # stop_pid PID SIGNAL SECONDS: signal, wait up to SECONDS, then KILL
  local pid="$1" sig="$2" secs="$3" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "pid $pid did not stop in ${secs}s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

del_netns() {  # del_netns NAME: kill what still runs in it (by pid), then delete it
  local ns="$1" pid
  [[ -e "/run/netns/$ns" ]] || return 0
  for pid in $(ip netns pids "$ns" 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  ip netns del "$ns" || log "could not delete network namespace $ns"
}

CLEANED=""
cleanup() {
  local rc=$?
  [[ -n "$CLEANED" ]] && return
  CLEANED=1
  trap '' INT TERM HUP
  set +e
  if [[ -n "$PY_PID" ]]; then
    # The driver deletes its sandboxes, networks and baseline namespaces on SIGTERM.
    stop_pid "$PY_PID" TERM 120
    wait "$PY_PID" 2>/dev/null
  fi
  # Baseline namespaces the driver did not remove.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NS-" || true); do
    log "removing leftover namespace $ns"
    del_netns "$ns"
  done
  if [[ -n "$SHOAL_PID" ]]; then
    stop_pid "$SHOAL_PID" INT 20
    wait "$SHOAL_PID" 2>/dev/null
  fi
  # Every host object of this data dir (containers, sandbox netns, overlay mounts, cgroups), and
  # the bridges/ports/nftables table of our namespace. Run inside it: a purge in the host
  # namespace would remove the dataplane of any other Shoal running there.
  if [[ -n "$NS_MADE" && -d "$DATA" ]]; then
    nsenter --net="/run/netns/$NS" "$SHOAL" node purge --yes --data-dir "$DATA" --images-dir "$IMAGES" \
      >>"$SHOAL_LOG" 2>&1 || log "shoal node purge failed (see $SHOAL_LOG)"
  fi
  [[ -n "$NS_MADE" ]] && del_netns "$NS"
  grep -F " $TMP/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
    log "unmounting leftover $m"
    umount -l "$m"
  done
  if [[ $rc -ne 0 && -s "$SHOAL_LOG" ]]; then
    log "last lines of the shoal log:"
    tail -n 20 "$SHOAL_LOG" >&2
  fi
  if grep -qF " $TMP/" /proc/self/mounts; then
    log "mounts remain under $TMP; leaving it in place"
  else
    rm -rf --one-file-system "$TMP"
  fi
  log "cleaned up"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM HUP

ip netns add "$NS"
NS_MADE=1
ip -n "$NS" link set lo up
log "namespace $NS, data dir $DATA, API on 127.0.0.1:$PORT inside the namespace"
: >"$SHOAL_LOG"
# setsid: a Ctrl-C at the terminal must not stop Shoal before the driver deleted its sandboxes.
setsid nsenter --net="/run/netns/$NS" "$SHOAL" up --data-dir "$DATA" --images-dir "$IMAGES" \
  --listen "127.0.0.1:$PORT" --no-client-config --agent-bin "$AGENT" </dev/null >"$SHOAL_LOG" 2>&1 &
SHOAL_PID=$!
for ((i = 0; ; i++)); do
  grep -q "Shoal is up" "$SHOAL_LOG" && break
  if ! kill -0 "$SHOAL_PID" 2>/dev/null; then
    log "shoal up exited before it was ready:"; cat "$SHOAL_LOG" >&2; exit 1
  fi
  if ((i > 1800)); then
    log "shoal up not ready after 180 s"; exit 1
  fi
  sleep 0.1
done
log "shoal is up (pid $SHOAL_PID)"

# In the background + wait, so that the traps run (and forward SIGTERM) while it runs.
nsenter --net="/run/netns/$NS" python3 "$ROOT/bench/network.py" --port "$PORT" --netns-prefix "$NS" "$@" &
PY_PID=$!
set +e
wait "$PY_PID"
py_rc=$?
set -e
PY_PID=""
exit "$py_rc"
