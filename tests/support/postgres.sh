# Sourced by tests/run.sh: starts a throwaway PostgreSQL cluster from the system's binaries
# and exports DATABASE_URL for it. Nothing here touches the Debian-managed clusters.
#
# The cluster lives in a fresh folder under /tmp (every user, including `postgres`, can reach
# it wherever the checkout is). The `postgres` superuser connects over its Unix socket without
# a password; every other role needs its password (SCRAM), over the socket or over TLS on a
# free loopback port with a certificate from a throwaway CA (KEYSTONE_PG_TLS_URL and
# KEYSTONE_PG_TLS_CA), so password rotation and certificate verification can be tested.

keystone_pg_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    done
    return 1
}

keystone_pg_start() {
    local bindir
    if ! bindir="$(keystone_pg_bindir)"; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "==> installing PostgreSQL (apt-get install postgresql)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
            bindir="$(keystone_pg_bindir)"
        else
            echo "PostgreSQL server binaries not found; install the postgresql package" >&2
            return 1
        fi
    fi

    KEYSTONE_PG_DIR="$(mktemp -d /tmp/keystone-test-pg.XXXXXX)"
    local as=()
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root: the cluster belongs to the postgres user.
        chown postgres: "$KEYSTONE_PG_DIR"
        as=(runuser -u postgres --)
    fi
    KEYSTONE_PG_AS=("${as[@]}")
    KEYSTONE_PG_CTL="$bindir/pg_ctl"

    "${as[@]}" "$bindir/initdb" -D "$KEYSTONE_PG_DIR/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$KEYSTONE_PG_DIR/initdb.log" 2>&1 \
        || { cat "$KEYSTONE_PG_DIR/initdb.log" >&2; return 1; }

    cat >"$KEYSTONE_PG_DIR/data/pg_hba.conf" <<HBA
local   all  postgres                 trust
local   all  all                      scram-sha-256
hostssl all  all       127.0.0.1/32   scram-sha-256
HBA
    local tls="$KEYSTONE_PG_DIR/tls" port
    if ! command -v openssl >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null
    fi
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=keystone test CA" \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost\n' >"$tls/san.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$tls/san.ext" -out "$tls/server.pem" >/dev/null 2>&1
    chmod 600 "$tls/server.key"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$tls" "$KEYSTONE_PG_DIR/data/pg_hba.conf"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    KEYSTONE_PG_PORT="$port"

    # Benchmarks run against this cluster turn the statement log off with
    # KEYSTONE_PG_LOG_STATEMENTS=0: logging every statement costs time per statement.
    local statement_log="-c log_statement=all -c log_line_prefix='%m [%p] app=%a user=%u db=%d '"
    [ "${KEYSTONE_PG_LOG_STATEMENTS:-1}" = 0 ] && statement_log=""
    # Durability is irrelevant for a throwaway test cluster; pg_stat_statements lets the
    # tests count the statements a request runs; every statement goes to the server log with
    # its session's application name, which the pinning check reads at the end
    # (tests/src/pinning.rs).
    "${as[@]}" "$bindir/pg_ctl" -D "$KEYSTONE_PG_DIR/data" -l "$KEYSTONE_PG_DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -k $KEYSTONE_PG_DIR -c max_connections=400 \
            -c ssl=on -c ssl_cert_file=$tls/server.pem -c ssl_key_file=$tls/server.key \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
            -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=50000 \
            -c pg_stat_statements.track_utility=on $statement_log" \
        start >/dev/null \
        || { cat "$KEYSTONE_PG_DIR/server.log" >&2; return 1; }

    export DATABASE_URL="postgres://postgres@localhost:$port/postgres?host=$KEYSTONE_PG_DIR"
    export KEYSTONE_PG_TLS_URL="postgres://localhost:$port" KEYSTONE_PG_TLS_CA="$tls/ca.pem"
    export KEYSTONE_PG_LOG="$KEYSTONE_PG_DIR/server.log"
    echo "==> PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on $KEYSTONE_PG_DIR"
}

keystone_pg_stop() {
    if [ -n "${KEYSTONE_PG_DIR:-}" ] && [ -d "$KEYSTONE_PG_DIR/data" ]; then
        "${KEYSTONE_PG_AS[@]}" "$KEYSTONE_PG_CTL" -D "$KEYSTONE_PG_DIR/data" -m immediate stop \
            >/dev/null 2>&1 || true
        rm -rf "$KEYSTONE_PG_DIR"
    fi
}
