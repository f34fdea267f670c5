# Sourced by tests/run.sh after postgres.sh: puts Debian's PgBouncer in front of the test
# cluster the way RDS Proxy sits in front of Aurora (transaction pooling, unknown startup
# parameters refused except `extra_float_digits`), installing it with apt-get when missing, and
# exports KEYSTONE_PGBOUNCER_URL (no database name: tests append their own).

keystone_pgbouncer_start() {
    local bin
    bin="$(command -v pgbouncer || ls /usr/sbin/pgbouncer 2>/dev/null || true)"
    if [ -z "$bin" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "==> installing PgBouncer (apt-get install pgbouncer)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null 2>&1 || {
                apt-get update -q >/dev/null
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null
            }
            bin=/usr/sbin/pgbouncer
        else
            echo "pgbouncer not found; install the pgbouncer package" >&2
            return 1
        fi
    fi
    local dir="$KEYSTONE_PG_DIR/pgbouncer" port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    mkdir -p "$dir"
    # Every database of the test cluster, reached over its Unix socket as the client's user.
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$KEYSTONE_PG_DIR port=$KEYSTONE_PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
ignore_startup_parameters = extra_float_digits
max_client_conn = 500
default_pool_size = 20
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
# Tests drop their databases right after use: do not keep idle server connections to them.
server_idle_timeout = 2
INI
    printf '"postgres" ""\n' >"$dir/userlist.txt"
    # PgBouncer refuses to run as root: like the cluster, it belongs to the postgres user.
    [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
    "${KEYSTONE_PG_AS[@]}" "$bin" -d "$dir/pgbouncer.ini" \
        || { cat "$dir/pgbouncer.log" >&2; return 1; }
    KEYSTONE_PGBOUNCER_DIR="$dir"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            export KEYSTONE_PGBOUNCER_URL="postgres://postgres@127.0.0.1:$port"
            echo "==> PgBouncer $("$bin" --version | head -1 | awk '{print $2}') (transaction pooling) on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    cat "$dir/pgbouncer.log" >&2
    return 1
}

keystone_pgbouncer_stop() {
    if [ -n "${KEYSTONE_PGBOUNCER_DIR:-}" ] && [ -f "$KEYSTONE_PGBOUNCER_DIR/pgbouncer.pid" ]; then
        kill "$(cat "$KEYSTONE_PGBOUNCER_DIR/pgbouncer.pid")" 2>/dev/null || true
    fi
}
