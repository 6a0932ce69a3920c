#!/usr/bin/env bash
# The main job, end to end: installs what is missing, builds Shoal, starts `shoal up` on its
# embedded defaults, and runs the two-sandboxes-on-one-network example with the CLI:
#   network team-eval with sandboxes api and worker (devbox:1); worker serves /health on 8080;
#   api reaches it by the IP from the member list; outsider on another network reaches nothing.
# Run as root. KEEP=1 leaves Shoal and the example running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "error: run as root (Shoal creates namespaces, bridges and containers)" >&2; exit 1; }

./scripts/install-deps.sh
./scripts/build.sh
SHOAL="$(realpath "${CARGO_TARGET_DIR:-target}")/release/shoal"
export SHOAL_DATA_DIR="${SHOAL_DATA_DIR:-/var/lib/shoal}"
URL="${SHOAL_URL:-http://127.0.0.1:7070}"
mkdir -p "$SHOAL_DATA_DIR"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ shoal'; printf ' %q' "$@"; printf '\n'; "$SHOAL" "$@"; }

started=""
cleanup() {
  if [ -z "${KEEP:-}" ]; then
    "$SHOAL" sandbox rm api worker outsider >/dev/null 2>&1 || true
    "$SHOAL" network rm team-eval >/dev/null 2>&1 || true
    "$SHOAL" network rm other >/dev/null 2>&1 || true
    if [ -n "$started" ]; then
      kill -INT "$started" 2>/dev/null || true
      wait "$started" 2>/dev/null || true
      echo "==> stopped shoal up (KEEP=1 keeps it running)"
    fi
  fi
}
trap cleanup EXIT

if curl -fsS "$URL/healthz" >/dev/null 2>&1; then
  step "using the Shoal already running at $URL"
else
  step "starting shoal up (data in $SHOAL_DATA_DIR, log in $SHOAL_DATA_DIR/up.log)"
  "$SHOAL" up >>"$SHOAL_DATA_DIR/up.log" 2>&1 &
  started=$!
  for _ in $(seq 100); do
    curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
    kill -0 "$started" 2>/dev/null || { cat "$SHOAL_DATA_DIR/up.log"; exit 1; }
    sleep 0.1
  done
  grep -A2 "API key" "$SHOAL_DATA_DIR/up.log" || true
fi

if ! "$SHOAL" image list --json | grep -q '"devbox:1"'; then
  step "building image devbox:1 (Debian 12 minbase + curl, python3, iproute2, ...; about a minute)"
  show image build devbox:1
fi
show image list

# A previous run may have left the example behind (KEEP=1): start from scratch.
"$SHOAL" sandbox rm api worker outsider >/dev/null 2>&1 || true
"$SHOAL" network rm --force team-eval >/dev/null 2>&1 || true
"$SHOAL" network rm --force other >/dev/null 2>&1 || true

step "a private network and two sandboxes on it"
show network create team-eval
show sandbox create --name api --rootfs devbox:1 --shape s-1vcpu-1gb --net team-eval
show sandbox create --name worker --rootfs devbox:1 --shape s-1vcpu-1gb --net team-eval

step "worker serves /health on port 8080"
show exec worker -- sh -c 'mkdir -p /srv && echo ok > /srv/health && cd /srv && nohup python3 -m http.server 8080 >/dev/null 2>&1 &'

step "look up worker's address in the network's member list"
show network get team-eval
WORKER_IP=$("$SHOAL" network get team-eval --json | python3 -c 'import json,sys; print(next(m["ip"] for m in json.load(sys.stdin)["members"] if m["sandbox_name"]=="worker"))')
echo "worker is $WORKER_IP"

step "api -> worker: curl http://$WORKER_IP:8080/health"
code=$("$SHOAL" exec api -- sh -c "for i in \$(seq 30); do c=\$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://$WORKER_IP:8080/health) && break; sleep 0.2; done; echo \$c")
echo "HTTP $code"
[ "$code" = 200 ] || { echo "FAIL: api could not reach worker"; exit 1; }

step "a third sandbox on another network"
show network create other
show sandbox create --name outsider --rootfs devbox:1 --net other
OUTSIDER_IP=$("$SHOAL" network get other --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["members"][0]["ip"])')

step "outsider -> worker ($WORKER_IP) must fail"
if "$SHOAL" exec outsider -- curl -sS --max-time 2 "http://$WORKER_IP:8080/health"; then
  echo "FAIL: outsider reached worker"; exit 1
fi
echo "refused, as it should be"

step "api -> outsider ($OUTSIDER_IP) must fail"
if "$SHOAL" exec api -- ping -c 1 -W 1 "$OUTSIDER_IP"; then
  echo "FAIL: api reached outsider"; exit 1
fi
echo "unreachable, as it should be"

step "PASS: api and worker talk on team-eval; outsider on another network is cut off both ways"
show sandbox list
