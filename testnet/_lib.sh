# Shared by the testnet scripts: locate the repo, the cluster dir and the binaries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${HASHMESH_TESTNET_DIR:-$ROOT/testnet/.data}"
HASHMESH="$ROOT/target/release/hashmesh"
TESTNET="$ROOT/target/release/hashmesh-testnet"
build_binaries() {
  echo "building hashmesh and hashmesh-testnet (release)..." >&2
  (cd "$ROOT" && cargo build --release -p hashmesh-node --bin hashmesh -p hashmesh-testnet --bin hashmesh-testnet >&2)
}
need_binary() {
  if [ ! -x "$HASHMESH" ] || [ ! -x "$TESTNET" ]; then
    build_binaries
  fi
}
