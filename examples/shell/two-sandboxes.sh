#!/usr/bin/env bash
# Two sandboxes on a private network, with the CLI: worker serves /health on 8080, api on the
# same network reaches it by the address from the member list (200); outsider on another network
# cannot. Needs a running `shoal up` with devbox:1 (`shoal image build devbox:1`).
#   SHOAL=target/release/shoal examples/shell/two-sandboxes.sh
set -euo pipefail
SHOAL=${SHOAL:-shoal}
cleanup() {
  $SHOAL sandbox rm api worker outsider >/dev/null 2>&1 || true
  $SHOAL network rm --force team-eval >/dev/null 2>&1 || true
  $SHOAL network rm --force other >/dev/null 2>&1 || true
}
trap cleanup EXIT

$SHOAL network create team-eval
$SHOAL sandbox create --name api --rootfs devbox:1 --net team-eval
$SHOAL sandbox create --name worker --rootfs devbox:1 --net team-eval
$SHOAL exec worker -- sh -c 'mkdir -p /srv && echo ok > /srv/health && cd /srv && nohup python3 -m http.server 8080 >/dev/null 2>&1 &'
WORKER_IP=$($SHOAL network members team-eval --json | python3 -c 'import json,sys; print(next(m["ip"] for m in json.load(sys.stdin) if m["sandbox_name"] == "worker"))')

code=$($SHOAL exec api -- sh -c "for i in \$(seq 30); do c=\$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://$WORKER_IP:8080/health) && break; sleep 0.2; done; echo \$c")
echo "api -> worker ($WORKER_IP): HTTP $code"
[ "$code" = 200 ] || { echo "FAIL: api could not reach worker" >&2; exit 1; }

$SHOAL network create other
$SHOAL sandbox create --name outsider --rootfs devbox:1 --net other
code=$($SHOAL exec outsider -- curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$WORKER_IP:8080/health" || true)
echo "outsider -> worker: HTTP $code (000 = no connection)"
[ "$code" = 000 ] || { echo "FAIL: outsider reached worker" >&2; exit 1; }
echo PASS
