#!/usr/bin/env bash
# Exec round trip, streamed-exec time to first byte and file upload/download throughput for
# Shoal, each next to a host baseline (see docs/benchmarks.md, "Exec streaming and files").
#
#   sudo bench/exec_files.sh [exec_files.py options, e.g. --reps 5 --file-mib 256 --json out.json]
#
# What it does (the same approach as bench/run.sh):
#   1. builds shoal + shoal-agent with scripts/build.sh if a binary is missing or older than
#      the sources (set SHOAL_BENCH_NO_BUILD=1 to skip the check and use what is there);
#   2. re-executes itself in a private network namespace (unshare --net), so that this Shoal
#      node's bridges/ports/nftables table cannot clash with another Shoal on the machine; the
#      API listens on 127.0.0.1:7290, that namespace's loopback, so no traffic leaves loopback;
#   3. starts `shoal up` on a fresh temporary data dir, runs bench/exec_files.py against it,
#      stops Shoal and runs `shoal node purge` on the data dir; the trap does the same (plus
#      the temp dir with the 256 MiB source file) on error, Ctrl-C or SIGTERM.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/bench/exec_files.sh"
LISTEN="127.0.0.1:7290"   # loopback of the private namespace only, by design; do not change
SHOAL="$ROOT/target/release/shoal"
AGENT="$ROOT/target/x86_64-unknown-linux-gnu/release/shoal-agent"

log() { echo "[bench] $*" >&2; }

# ---------------------------------------------------------------- outer part: build, unshare
if [[ "${1:-}" != "--in-netns" ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bench/exec_files.sh must run as root (Shoal creates namespaces, mounts and cgroups)" >&2
    exit 1
  fi
  for tool in python3 runc unshare setsid ip nft flock; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
  done
  if [[ -z "${SHOAL_BENCH_NO_BUILD:-}" ]]; then
    stale=""
    for bin in "$SHOAL" "$AGENT"; do
      if [[ ! -x "$bin" ]]; then
        stale="$bin is missing"
      elif [[ -n "$(find "$ROOT/crates" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$bin" -type f \
                     -not -path '*/tests/*' -print -quit)" ]]; then
        stale="$bin is older than the sources"
      fi
      [[ -n "$stale" ]] && break
    done
    if [[ -n "$stale" ]]; then
      log "$stale: running scripts/build.sh (can take a while; waits if another build holds cargo's lock)"
      "$ROOT/scripts/build.sh"
    else
      log "binaries are up to date"
    fi
  fi
  [[ -x "$SHOAL" && -x "$AGENT" ]] || { echo "shoal binaries not found; run scripts/build.sh" >&2; exit 1; }
  # Same PID, new network namespace; signals sent to this script still reach it.
  exec unshare --net -- bash "$SELF" --in-netns "$@"
fi
shift  # --in-netns

# ---------------------------------------------------------------- inner part (private netns)
ip link set lo up
# Shoal's one-node-per-network-namespace lock for this (private, short-lived) namespace.
NETNS_LOCK="/run/shoal/netns-$(stat -L -c %i /proc/self/ns/net).lock"

TMP="$(mktemp -d /tmp/shoal-xfbench.XXXXXX)"
DATA="$TMP/data"
SHOAL_LOG="$TMP/shoal.log"
SHOAL_PID=""
PY_PID=""        # set while the benchmark runs
# Settings a caller's environment could otherwise slip into `shoal up` / purge.
unset SHOAL_IMAGES_DIR SHOAL_OCI_RUNTIME SHOAL_DATA_DIR SHOAL_LISTEN SHOAL_URL SHOAL_CONFIG SHOAL_AGENT_BIN
export SHOAL_API_KEY="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$DATA"

stop_pid() {  # stop_pid PID SECONDS: TERM, wait up to SECONDS, then KILL
  local pid="$1" secs="$2" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "pid $pid did not stop in ${secs}s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

CLEANED=""
cleanup() {
  local rc=$?
  [[ -n "$CLEANED" ]] && return
  CLEANED=1
  trap '' INT TERM HUP   # finish cleaning up even if interrupted again
  set +e
  if [[ -n "$PY_PID" ]]; then
    # The benchmark deletes its own sandbox and files on SIGTERM (after the step in flight;
    # a 256 MiB transfer takes seconds).
    stop_pid "$PY_PID" 120
    wait "$PY_PID" 2>/dev/null
  fi
  if [[ -n "$SHOAL_PID" ]]; then
    stop_pid "$SHOAL_PID" 20
    wait "$SHOAL_PID" 2>/dev/null
  fi
  # Every host object of this data dir: containers, netns, overlay mounts, ports, bridges,
  # nftables table (of this private namespace).
  if [[ -d "$DATA" ]]; then
    if ! "$SHOAL" node purge --data-dir "$DATA" --yes >>"$SHOAL_LOG" 2>&1; then
      log "shoal node purge of $DATA failed:"
      tail -n 5 "$SHOAL_LOG" >&2
      [[ $rc -eq 0 ]] && rc=1
    fi
  fi
  # Our namespace dies with us, so its node lock file would only pile up in /run/shoal.
  if [[ -f "$NETNS_LOCK" ]] && flock -n "$NETNS_LOCK" true; then
    rm -f "$NETNS_LOCK"
  fi
  # Never rm -rf through a mount: unmount anything still mounted below the temp dir first.
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

log "data dir $DATA, API on $LISTEN (private network namespace, node lock $NETNS_LOCK)"
: >"$SHOAL_LOG"
# setsid: a Ctrl-C at the terminal must not stop Shoal before the benchmark deleted its sandbox.
setsid "$SHOAL" up --data-dir "$DATA" --listen "$LISTEN" --no-client-config --agent-bin "$AGENT" \
  </dev/null >"$SHOAL_LOG" 2>&1 &
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
python3 "$ROOT/bench/exec_files.py" \
  --port "${LISTEN##*:}" --work-dir "$TMP" --shoal-pid "$SHOAL_PID" "$@" &
PY_PID=$!
set +e
wait "$PY_PID"
py_rc=$?
set -e
PY_PID=""
exit "$py_rc"
