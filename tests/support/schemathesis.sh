# Sourced by tests/run.sh: fuzzing driven by the committed API document (SPEC §10).
#
# Starts the real local stack (`keystone-local --demo`) on a fresh database of the test
# cluster and the test SQS server, checks that it serves the committed `docs/openapi.json`, and
# runs schemathesis against it with no token, an admin's, and each demo collector's (the
# external-device one and the Axon one): every operation, a bounded number of examples per
# operation, every check but `positive_data_acceptance` (schema-valid requests that break a
# business rule, such as a quota or an unknown id, rightly get a documented 4xx). Any 5xx, any
# status or header the document does not list, any body its schema refuses, any schema-invalid
# request accepted, fails the run. Needs keystone_pg_start and keystone_moto_start first.

KEYSTONE_SCHEMATHESIS_VERSION=4.32.5
# Per operation and per token; the seed makes a failing run repeatable (override both to
# explore: KEYSTONE_FUZZ_EXAMPLES=1000 KEYSTONE_FUZZ_SEED=$RANDOM bash tests/run.sh).
KEYSTONE_FUZZ_EXAMPLES="${KEYSTONE_FUZZ_EXAMPLES:-100}"
KEYSTONE_FUZZ_SEED="${KEYSTONE_FUZZ_SEED:-20261124}"

keystone_schemathesis_setup() {
    local venv="target/tools/schemathesis-$KEYSTONE_SCHEMATHESIS_VERSION"
    if [ ! -x "$venv/bin/schemathesis" ]; then
        echo "==> installing schemathesis $KEYSTONE_SCHEMATHESIS_VERSION into $venv"
        if ! python3 -m venv "$venv" >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
            python3 -m venv "$venv"
        fi
        "$venv/bin/pip" install --quiet "schemathesis==$KEYSTONE_SCHEMATHESIS_VERSION"
    fi
    KEYSTONE_SCHEMATHESIS="$PWD/$venv/bin/schemathesis"
    echo "==> $("$KEYSTONE_SCHEMATHESIS" --version)"
}

keystone_fuzz_stop() {
    if [ -n "${KEYSTONE_FUZZ_PID:-}" ]; then
        kill "$KEYSTONE_FUZZ_PID" 2>/dev/null || true
        wait "$KEYSTONE_FUZZ_PID" 2>/dev/null || true
        KEYSTONE_FUZZ_PID=
    fi
}

# Prints the access token a login answers.
keystone_fuzz_token() {
    curl -sf -X POST "$1/api/v1/auth/login" -d "{\"account\":\"$2\",\"password\":\"$3\"}" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

keystone_contract_fuzz() {
    local db=keystone_contract_fuzz port base log status=0 i
    cargo build --quiet --locked -p keystone-local
    "$(keystone_pg_bindir)/psql" -q -d "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" \
        -c "CREATE DATABASE $db" >/dev/null
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    base="http://127.0.0.1:$port"
    log="target/tools/keystone-local-fuzz.log"
    DATABASE_URL="postgres://postgres@localhost:$KEYSTONE_PG_PORT/$db?host=$KEYSTONE_PG_DIR" \
        PORT="$port" ADMIN_USERNAME=fuzz-admin ADMIN_PASSWORD=fuzz-admin-password \
        RUST_LOG=warn \
        target/debug/keystone-local --demo >"$log" 2>&1 &
    KEYSTONE_FUZZ_PID=$!
    for i in $(seq 1 120); do
        curl -sf -o /dev/null "$base/openapi.json" && break
        kill -0 "$KEYSTONE_FUZZ_PID" 2>/dev/null || break
        sleep 0.5
    done
    if ! curl -sf "$base/openapi.json" | cmp -s - docs/openapi.json; then
        echo "keystone-local does not serve the committed docs/openapi.json (log: $log)"
        tail -20 "$log"
        keystone_fuzz_stop
        return 1
    fi
    echo "==> keystone-local on $base serves docs/openapi.json"

    local admin dc001 dc002
    admin="$(keystone_fuzz_token "$base" fuzz-admin fuzz-admin-password)"
    dc001="$(keystone_fuzz_token "$base" DC001 keystone-demo)"
    dc002="$(keystone_fuzz_token "$base" DC002 keystone-demo)"
    local -a roles=("no token" "admin" "collector DC001 (external device)" "collector DC002 (Axon)")
    local -a tokens=("" "$admin" "$dc001" "$dc002")
    if [ -z "$admin" ] || [ -z "$dc001" ] || [ -z "$dc002" ]; then
        echo "cannot log in to keystone-local (log: $log)"
        keystone_fuzz_stop
        return 1
    fi
    # Logging out ends the session every later call of that role uses, so it runs last, in a
    # pass of its own per role.
    local pass
    for pass in "--exclude-operation-id" "--include-operation-id"; do
        for i in "${!roles[@]}"; do
            local -a auth=()
            local out="target/tools/schemathesis-run-$i${pass%%-operation-id}.txt"
            [ -n "${tokens[$i]}" ] && auth=(-H "Authorization: Bearer ${tokens[$i]}")
            echo "==> schemathesis, ${roles[$i]} (${pass#--} log_out): $KEYSTONE_FUZZ_EXAMPLES examples per operation, seed $KEYSTONE_FUZZ_SEED"
            if ! "$KEYSTONE_SCHEMATHESIS" run docs/openapi.json --url "$base" "${auth[@]}" \
                "$pass" log_out \
                --checks all --exclude-checks positive_data_acceptance \
                --max-examples "$KEYSTONE_FUZZ_EXAMPLES" --seed "$KEYSTONE_FUZZ_SEED" \
                --generation-database none --no-color >"$out" 2>&1; then
                status=1
            fi
            # Its failures (each with a curl to reproduce it) and summary; the whole report,
            # warnings included, is in $out.
            sed -n '/^=\+ \(FAILURES\|SUMMARY\) =\+$/,$p' "$out"
        done
    done
    keystone_fuzz_stop
    "$(keystone_pg_bindir)/psql" -q -d "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null
    return "$status"
}
