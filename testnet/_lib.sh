# Shared by the testnet scripts: locate the repo, the cluster dir and the hashmesh binary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${HASHMESH_TESTNET_DIR:-$ROOT/testnet/.data}"
HASHMESH="$ROOT/target/release/hashmesh"
need_binary() {
  if [ ! -x "$HASHMESH" ]; then
    echo "building hashmesh (release)..." >&2
    (cd "$ROOT" && cargo build --release -p hashmesh-node --bin hashmesh >&2)
  fi
}
