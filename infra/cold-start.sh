#!/usr/bin/env bash
# Measures cold-start initialisation of the HTTP functions: process start to first response,
# median of 10 fresh processes each, through a local Lambda Runtime API emulator
# (infra/cold_start.py), with a real PostgreSQL configured and queried by the request.
# Builds x86_64 bootstraps with the same compiler settings as the arm64 Lambda build (this
# machine cannot run arm64 code), so absolute figures differ from Lambda's; the comparison
# between functions and builds holds. A benchmark: it prints figures and gates nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lambda-env.sh
source infra/lambda-env.sh
# shellcheck source=tests/support/postgres.sh
source tests/support/postgres.sh
keystone_lambda_tools

cargo lambda build --release --lambda-dir target/lambda-x86_64 \
    --bin db-migrate --bin auth-me --bin my-batches
trap keystone_pg_stop EXIT
keystone_pg_start
psql -q "$DATABASE_URL" -c "CREATE DATABASE keystone_cold_start" >/dev/null
export DATABASE_URL="postgres://postgres@localhost:$KEYSTONE_PG_PORT/keystone_cold_start?host=$KEYSTONE_PG_DIR"
export JWT_SECRET=cold-start-secret-0123456789

# Migrate through the db-migrate function itself, then add one collector with a workstation.
python3 infra/cold_start.py target/lambda-x86_64/db-migrate/bootstrap 1 POST /migrate none >/dev/null
psql -q "$DATABASE_URL" >/dev/null <<'SQL'
INSERT INTO organizations (name, slug) VALUES ('Cold', 'cold');
INSERT INTO robot_types (name, capabilities) VALUES ('SynGloves', '{"requires_axon": false}');
INSERT INTO robots (robot_type_id, device_id) VALUES (1, 'robot-1');
INSERT INTO data_collectors (name, operator_id) VALUES ('Cold', 'DC001');
INSERT INTO workstations (robot_id, data_collector_id, organization_id, name) VALUES (1, 1, 1, 'WS');
SQL
token="$(python3 - <<'PY'
import base64, hashlib, hmac, json, time
enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
now = int(time.time())
claims = enc(json.dumps({"collector_id": 1, "operator_id": "DC001", "role": "data_collector", "exp": now + 3600, "iat": now, "nbf": now}).encode())
signature = enc(hmac.new(b"cold-start-secret-0123456789", f"{header}.{claims}".encode(), hashlib.sha256).digest())
print(f"{header}.{claims}.{signature}")
PY
)"
for function in auth-me my-batches; do
    path=/api/v1/auth/me
    [ "$function" = my-batches ] && path=/api/v1/me/batches
    python3 infra/cold_start.py "target/lambda-x86_64/$function/bootstrap" 10 GET "$path" "$token"
done
