# Sourced by tests/run.sh: starts a local SQS server (moto_server, PyPI package
# moto[server]) on a free loopback port, installing it first when it is missing, and exports
# AWS_ENDPOINT_URL_SQS and dummy credentials for it.

keystone_moto_start() {
    if ! command -v moto_server >/dev/null 2>&1; then
        echo "==> installing moto[server] (pip)"
        if ! python3 -m pip --version >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip >/dev/null
        fi
        # Debian's own Python refuses system-wide installs (PEP 668): fall back to the user's.
        python3 -m pip install --quiet "moto[server]" >/dev/null 2>&1 \
            || python3 -m pip install --quiet --user --break-system-packages "moto[server]" >/dev/null
        export PATH="$HOME/.local/bin:$PATH"
        hash -r
    fi
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    KEYSTONE_MOTO_LOG="$(mktemp /tmp/keystone-moto.XXXXXX.log)"
    moto_server -H 127.0.0.1 -p "$port" >"$KEYSTONE_MOTO_LOG" 2>&1 &
    KEYSTONE_MOTO_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$port"
            export AWS_ACCESS_KEY_ID=keystone-test AWS_SECRET_ACCESS_KEY=keystone-test
            export AWS_REGION=us-east-1
            echo "==> moto_server on $AWS_ENDPOINT_URL_SQS"
            return 0
        fi
        sleep 0.1
    done
    cat "$KEYSTONE_MOTO_LOG" >&2
    return 1
}

keystone_moto_stop() {
    if [ -n "${KEYSTONE_MOTO_PID:-}" ]; then
        kill "$KEYSTONE_MOTO_PID" 2>/dev/null || true
        wait "$KEYSTONE_MOTO_PID" 2>/dev/null || true
        rm -f "$KEYSTONE_MOTO_LOG"
    fi
}
