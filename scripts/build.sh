#!/usr/bin/env bash
# Builds `shoal` and the statically linked `shoal-agent` (release). Output:
#   target/release/shoal
#   target/x86_64-unknown-linux-gnu/release/shoal-agent   (found by `shoal up` automatically)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> building shoal (release)"
cargo build --release --locked -p shoal -p shoal-example-two-sandboxes
echo "==> building shoal-agent (release, static)"
# +crt-static links glibc statically; the agent then runs in any root filesystem.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked -p shoal-agent --target x86_64-unknown-linux-gnu
if ldd "${CARGO_TARGET_DIR:-target}"/x86_64-unknown-linux-gnu/release/shoal-agent 2>&1 | grep -q '=>'; then
  echo "error: shoal-agent is dynamically linked" >&2
  exit 1
fi
