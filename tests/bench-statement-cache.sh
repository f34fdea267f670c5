#!/usr/bin/env bash
# Runs the statement-cache benchmark (tests/benches/statement_cache.rs) against a throwaway
# PostgreSQL and PgBouncer started like the test command's. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/support/postgres.sh
source tests/support/postgres.sh
# shellcheck source=tests/support/pgbouncer.sh
source tests/support/pgbouncer.sh
trap 'keystone_pgbouncer_stop; keystone_pg_stop' EXIT
# Figures without the test command's statement log, which costs time per statement.
KEYSTONE_PG_LOG_STATEMENTS=0 keystone_pg_start
keystone_pgbouncer_start
cargo bench -p keystone-tests --bench statement_cache
