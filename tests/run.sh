#!/usr/bin/env bash
# The test command (README): everything CI needs, from a fresh Debian machine with Rust and
# the system PostgreSQL package. Checks formatting and lints, starts its own PostgreSQL and
# local SQS servers (moto, and LocalStack's faithful SQS), picks a SAM-aware cfn-lint,
# installs a headless browser and schemathesis, runs every test against them, then fuzzes the
# local stack by its API document.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=tests/support/postgres.sh
source tests/support/postgres.sh
# shellcheck source=tests/support/pgbouncer.sh
source tests/support/pgbouncer.sh
# shellcheck source=tests/support/moto.sh
source tests/support/moto.sh
# shellcheck source=tests/support/localstack.sh
source tests/support/localstack.sh
# shellcheck source=tests/support/cfn-lint.sh
source tests/support/cfn-lint.sh
# shellcheck source=tests/support/sam.sh
source tests/support/sam.sh
# shellcheck source=tests/support/chromium.sh
source tests/support/chromium.sh
# shellcheck source=tests/support/redocly.sh
source tests/support/redocly.sh
# shellcheck source=tests/support/schemathesis.sh
source tests/support/schemathesis.sh

for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" \
        || rustup component add "$component"
done

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

trap 'keystone_fuzz_stop; keystone_localstack_stop; keystone_moto_stop; keystone_pgbouncer_stop; keystone_pg_stop' EXIT
keystone_pg_start
keystone_pgbouncer_start
keystone_moto_start
keystone_localstack_start
keystone_cfn_lint_setup
keystone_sam_setup
keystone_chromium_setup
keystone_schemathesis_setup
keystone_redocly_setup

echo "==> cargo test"
log="$(mktemp)"
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary, the last of which is
# an empty doc-test run).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"

# The API contract (SPEC §10): schemathesis against the real local stack, driven by the
# committed document.
echo "==> contract fuzzing (schemathesis against keystone-local)"
keystone_contract_fuzz || status=$?

# A seconds-long run of the performance bench (docs/performance.md): its figures are printed,
# never asserted; it fails only when an answer is not 2xx.
echo "==> keystone-bench --smoke"
cargo run --quiet --locked -p keystone-bench -- --smoke || status=$?

# SPEC §6: nothing the application sent over the whole suite, the contract fuzz and the bench
# would pin an RDS Proxy session (PostgreSQL's statement log, read by tests/src/pinning.rs).
echo "==> pinning check (statement log of the test cluster)"
cargo run --quiet --locked -p keystone-tests --bin pinning-check -- "$KEYSTONE_PG_LOG" || status=$?
exit "$status"
