#!/usr/bin/env bash
# `npm test`: runs the test suite against a real Shoal.
#
# Starts its own `shoal up` inside a network namespace it creates (DESIGN.md: no packet leaves
# loopback or the test's own namespaces), runs `node --test` inside that namespace too, and
# always tears everything down: stops shoal (SIGINT), purges its data directory (sandboxes,
# bridges, nftables table) and deletes the namespace.
#
# Needs root, runc and nftables, and the release build of shoal (built here when missing, with
# scripts/build.sh) plus the test images busybox:1 and devbox:1 in <repo>/target/test-images
# (built when missing; devbox:1 takes a few minutes the first time).
#
# Environment: SHOAL_BIN overrides the shoal binary; extra arguments go to `node --test`
# (e.g. `bash test/run.sh --test-name-pattern=attach`).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
pkg="$(dirname "$here")"
repo="$(cd "$pkg/../.." && pwd)"
shoal="${SHOAL_BIN:-$repo/target/release/shoal}"
images="$repo/target/test-images"

if [ "$(id -u)" != 0 ]; then
  echo "test/run.sh: needs root (network namespaces, runc, nftables)" >&2
  exit 1
fi
if [ ! -x "$shoal" ]; then
  echo "==> $shoal is missing: building shoal (scripts/build.sh)"
  "$repo/scripts/build.sh"
fi
mkdir -p "$images"
for ref in busybox:1 devbox:1; do
  if [ ! -f "$images/${ref%%:*}/${ref#*:}/image.json" ]; then
    echo "==> building test image $ref into $images"
    # The same lock as the Rust e2e harness, so that parallel builds do not race.
    flock "$images/.test-lock" "$shoal" image build "$ref" --images-dir "$images" --data-dir /nonexistent
  fi
done

ns="shoalts-$$"
tmp="$(mktemp -d /tmp/shoal-ts-test.XXXXXX)"
key="shoal_ts_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
shoal_pid=""
log="$tmp/up.log"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$shoal_pid" ] && kill -0 "$shoal_pid" 2>/dev/null; then
    kill -INT "$shoal_pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$shoal_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$shoal_pid" 2>/dev/null || true
    wait "$shoal_pid" 2>/dev/null || true
  fi
  if [ -e "/run/netns/$ns" ]; then
    if [ -d "$tmp/data" ]; then
      nsenter --net="/run/netns/$ns" "$shoal" node purge --yes --data-dir "$tmp/data" --images-dir "$images" >/dev/null \
        || echo "test/run.sh: purge of $tmp/data failed" >&2
    fi
    ip netns del "$ns" || true
  fi
  if [ "$rc" != 0 ] && [ -f "$log" ]; then
    echo "---- shoal up log ($log) ----" >&2
    tail -n 60 "$log" >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$ns"
ip -n "$ns" link set lo up

# nsenter, not `ip netns exec`: only the network namespace, so shoal's mounts and cgroups stay
# visible to everyone (and to the purge below). nsenter execs shoal: $! is shoal's pid.
SHOAL_API_KEY="$key" SHOAL_LOG="${SHOAL_LOG:-info}" nsenter --net="/run/netns/$ns" \
  "$shoal" up --data-dir "$tmp/data" --images-dir "$images" --listen 127.0.0.1:7070 --no-client-config \
  </dev/null >"$log" 2>&1 &
shoal_pid=$!

export SHOAL_URL="http://127.0.0.1:7070"
export SHOAL_API_KEY="$key"
# No client config file: the tests see only what they set themselves.
export SHOAL_CONFIG="$tmp/no-such-config.json"
export SHOAL_TEST_NETNS="$ns"

nsenter --net="/run/netns/$ns" node "$here/wait-ready.mjs" "$shoal_pid"

cd "$pkg"
# Test files: the ones named on the command line, else all of test/*.test.mjs.
files=(test/*.test.mjs)
for a in "$@"; do case "$a" in *.mjs | *.js) files=() ;; esac; done
nsenter --net="/run/netns/$ns" node --test --test-timeout=120000 "$@" "${files[@]}"
