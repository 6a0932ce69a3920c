#!/usr/bin/env bash
# The whole test suite: unit tests, then end-to-end tests that drive the real `shoal` binary
# against real runc, netlink, nftables and SQLite inside test network namespaces. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "error: run as root (the tests create namespaces, bridges and containers)" >&2; exit 1; }
./scripts/install-deps.sh
./scripts/build.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
T="${CARGO_TARGET_DIR:-target}"
echo "==> building test images (busybox:1, devbox:1) into $T/test-images"
for img in busybox:1 devbox:1; do
  name=${img%%:*}; tag=${img##*:}
  [ -f "$T/test-images/$name/$tag/image.json" ] || \
    "$T/release/shoal" image build "$img" --data-dir /nonexistent --images-dir "$T/test-images"
done
echo "==> unit and end-to-end tests"
# Two at a time: each end-to-end test runs its own `shoal up` in its own namespace.
cargo nextest run --release --locked --workspace --run-ignored all --test-threads 2 --no-fail-fast "$@"

command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || {
  echo "error: the TypeScript SDK tests need Node.js 20 or newer" >&2; exit 1; }
echo "==> TypeScript SDK tests (node --test against a real shoal up)"
(cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && npm test)

echo "==> Python SDK tests (pytest against a real shoal up)"
bash sdk/python/tests/run.sh
