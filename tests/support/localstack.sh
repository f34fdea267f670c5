# Sourced by tests/run.sh: LocalStack's own SQS implementation, the faithful SQS of the test
# command (beside moto_server, which is lax): a FIFO group's messages come back together and in
# order after a visibility timeout, a group stays locked while one of its messages is in
# flight, the dedup window holds after a delete, a redrive policy moves whole groups to the DLQ
# in order with their attributes, and one bad entry of a batch fails alone.
#
# It runs without Docker, an auth token or the internet: PyPI `localstack-core` in a Python
# 3.13 venv under target/tools/ (3.11 and 3.12 cannot load its plugins). Python 3.13 is taken
# from PATH, from pyenv, or installed with apt-get (Debian 13 ships it). Exports
# KEYSTONE_FAITHFUL_SQS_URL; the tests that need SQS's own semantics use it.

KEYSTONE_LOCALSTACK_VERSION=2026.3.0

keystone_localstack_python() {
    local candidate
    for candidate in "$(command -v python3.13 2>/dev/null)" "$HOME"/.pyenv/versions/3.13*/bin/python3.13; do
        # (a pyenv shim is on PATH whether or not it can run 3.13 here: run it to know)
        if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    if [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.13 python3.13-venv >/dev/null 2>&1; then
        command -v python3.13
        return 0
    fi
    echo "LocalStack's SQS needs Python 3.13 (python3.13 on PATH or under pyenv); none found" >&2
    return 1
}

keystone_localstack_setup() {
    local venv="target/tools/localstack-$KEYSTONE_LOCALSTACK_VERSION" python
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import localstack.runtime.main' 2>/dev/null; then
        echo "==> installing localstack-core $KEYSTONE_LOCALSTACK_VERSION into $venv"
        python="$(keystone_localstack_python)" || return 1
        rm -rf "$venv"
        "$python" -m venv "$venv" || return 1
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "localstack-core[base-runtime]==$KEYSTONE_LOCALSTACK_VERSION" \
            "cbor2<6" "pyopenssl<26" "cryptography<47" service_identity || return 1
    fi
    KEYSTONE_LOCALSTACK_VENV="$PWD/$venv"
}

keystone_localstack_start() {
    keystone_localstack_setup || return 1
    local port root
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # Its first start builds a large cache under its data folder: kept under target/ and
    # reused; only the per-run state is fresh.
    root="$PWD/target/tools/localstack-data"
    mkdir -p "$root/tmp" "$root/cache"
    rm -rf "$root/var_libs" "$root/state" 2>/dev/null || true
    KEYSTONE_LOCALSTACK_LOG="$(mktemp /tmp/keystone-localstack.XXXXXX.log)"
    env SERVICES=sqs EAGER_SERVICE_LOADING=1 \
        GATEWAY_LISTEN="127.0.0.1:$port" LOCALSTACK_HOST="127.0.0.1:$port" \
        DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
        SQS_DISABLE_CLOUDWATCH_METRICS=1 OVERRIDE_IN_DOCKER=0 \
        FILESYSTEM_ROOT="$root" TMPDIR="$root/tmp" XDG_CACHE_HOME="$root/cache" \
        "$KEYSTONE_LOCALSTACK_VENV/bin/python" -m localstack.runtime.main \
        >"$KEYSTONE_LOCALSTACK_LOG" 2>&1 &
    KEYSTONE_LOCALSTACK_PID=$!
    for _ in $(seq 1 600); do
        if curl -sf "http://127.0.0.1:$port/_localstack/health" 2>/dev/null \
            | grep -Eq '"sqs": *"(running|available)"'; then
            export KEYSTONE_FAITHFUL_SQS_URL="http://127.0.0.1:$port"
            echo "==> LocalStack SQS on $KEYSTONE_FAITHFUL_SQS_URL"
            return 0
        fi
        if ! kill -0 "$KEYSTONE_LOCALSTACK_PID" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    tail -40 "$KEYSTONE_LOCALSTACK_LOG" >&2
    return 1
}

keystone_localstack_stop() {
    if [ -n "${KEYSTONE_LOCALSTACK_PID:-}" ]; then
        kill "$KEYSTONE_LOCALSTACK_PID" 2>/dev/null || true
        wait "$KEYSTONE_LOCALSTACK_PID" 2>/dev/null || true
        rm -f "$KEYSTONE_LOCALSTACK_LOG"
        KEYSTONE_LOCALSTACK_PID=
    fi
}
