#!/usr/bin/env bash
# Runs the Python SDK's tests against a real Shoal. As root:
#
#   bash sdk/python/tests/run.sh [pytest args...]
#
# It starts its own `shoal up` inside a network namespace it creates (so no test packet leaves that
# namespace or loopback), runs pytest inside the same namespace, and always tears down: stops
# shoal (SIGINT), purges what its node made, deletes the namespace and the temporary data dir.
# The virtualenv lives in sdk/python/.venv (gitignored); it is (re)made when pyproject.toml or the
# interpreter changes (PYTHON=python3.10 to test another one).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SDK=$(dirname "$HERE")
ROOT=$(cd "$SDK/../.." && pwd)
SHOAL=$ROOT/target/release/shoal
IMAGES=$ROOT/target/test-images
VENV=$SDK/.venv
PY=$VENV/bin/python
PYTHON=${PYTHON:-python3}   # the interpreter the virtualenv is made from (>= 3.10)
PORT=7070

[ "$(id -u)" = 0 ] || { echo "error: run as root (the tests create a namespace, bridges and containers)" >&2; exit 1; }

# 1. Shoal and its test images.
if [ ! -x "$SHOAL" ]; then
  echo "==> building shoal"
  "$ROOT/scripts/build.sh"
fi
mkdir -p "$IMAGES"
for img in busybox:1 devbox:1; do
  name=${img%%:*}; tag=${img##*:}
  if [ ! -f "$IMAGES/$name/$tag/image.json" ]; then
    echo "==> building test image $img"
    # Same lock as the Rust e2e harness, so parallel runs do not build the same image twice.
    flock "$IMAGES/.test-lock" sh -c '[ -f "$1/$2/$3/image.json" ] || "$4" image build "$5" --data-dir /nonexistent --images-dir "$1"' \
      _ "$IMAGES" "$name" "$tag" "$SHOAL" "$img"
  fi
done

# 2. The virtualenv with the SDK (editable) and its test extras.
STAMP=$VENV/.shoal-sdk-stamp
want=$( (cat "$SDK/pyproject.toml"; command -v "$PYTHON"; "$PYTHON" --version) | sha256sum | cut -d' ' -f1)
if [ ! -x "$PY" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "==> creating $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -e "$SDK[test]"
  echo "$want" > "$STAMP"
fi

# 3. A namespace of our own, and `shoal up` in it.
NS=shoalpy-$$
TMP=$(mktemp -d /tmp/shoalpy-XXXXXX)
DATA=$TMP/data
LOG=$TMP/up.log
KEY=shoal_py_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
SHOAL_PID=

cleanup() {
  rc=$?
  set +e
  if [ -n "$SHOAL_PID" ] && kill -0 "$SHOAL_PID" 2>/dev/null; then
    kill -INT "$SHOAL_PID"
    for _ in $(seq 200); do kill -0 "$SHOAL_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SHOAL_PID" 2>/dev/null && { echo "shoal up did not stop on SIGINT; killing it" >&2; kill -KILL "$SHOAL_PID"; }
    wait "$SHOAL_PID" 2>/dev/null
  fi
  if [ -e "/run/netns/$NS" ]; then
    nsenter --net="/run/netns/$NS" "$SHOAL" node purge --yes --data-dir "$DATA" --images-dir "$IMAGES" >"$TMP/purge.log" 2>&1 \
      || { echo "purge failed:" >&2; cat "$TMP/purge.log" >&2; }
    ip netns del "$NS"
  fi
  if [ "$rc" != 0 ] && [ -f "$LOG" ]; then
    echo "---- shoal up log (last 60 lines) ----" >&2
    tail -n 60 "$LOG" >&2
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$NS"
ip -n "$NS" link set lo up

echo "==> starting shoal up in namespace $NS"
# nsenter enters only the network namespace (`ip netns exec` would also make a private mount
# namespace, hiding shoal's overlay mounts from everyone else) and execs shoal in place, so
# $! is shoal's pid.
SHOAL_API_KEY=$KEY SHOAL_LOG=info nsenter --net="/run/netns/$NS" \
  "$SHOAL" up --data-dir "$DATA" --images-dir "$IMAGES" --listen "127.0.0.1:$PORT" --no-client-config \
  </dev/null >"$LOG" 2>&1 &
SHOAL_PID=$!

for i in $(seq 600); do
  if nsenter --net="/run/netns/$NS" "$PY" -c \
      "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$SHOAL_PID" 2>/dev/null || { echo "shoal up exited early" >&2; exit 1; }
  [ "$i" = 600 ] && { echo "shoal up did not answer within 60 s" >&2; exit 1; }
  sleep 0.1
done

# 4. The tests, inside the namespace. SHOAL_CONFIG points at a file that does not exist, so
# that nothing is read from (or confused with) the real ~/.config/shoal.
echo "==> pytest"
cd "$SDK"
nsenter --net="/run/netns/$NS" env \
  SHOAL_URL="http://127.0.0.1:$PORT" SHOAL_API_KEY="$KEY" SHOAL_CONFIG="$TMP/no-client-config.json" \
  SHOAL_EXAMPLES_DIR="$ROOT/examples/python" \
  "$PY" -m pytest -p no:cacheprovider -ra "$@"
