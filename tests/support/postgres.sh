# Sourced by tests/run.sh: starts a throwaway PostgreSQL cluster from the system's binaries
# and exports DATABASE_URL for it. Nothing here touches the Debian-managed clusters.
#
# The cluster lives in a fresh folder under /tmp (every user, including `postgres`, can reach
# it wherever the checkout is) and listens on a Unix socket only, so no port can clash.

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

    # Durability is irrelevant for a throwaway test cluster; pg_stat_statements lets the
    # tests count the statements a request runs.
    "${as[@]}" "$bindir/pg_ctl" -D "$KEYSTONE_PG_DIR/data" -l "$KEYSTONE_PG_DIR/server.log" -w \
        -o "-c listen_addresses='' -k $KEYSTONE_PG_DIR -c max_connections=400 \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
            -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=50000 \
            -c pg_stat_statements.track_utility=on" \
        start >/dev/null \
        || { cat "$KEYSTONE_PG_DIR/server.log" >&2; return 1; }

    export DATABASE_URL="postgres://postgres@localhost/postgres?host=$KEYSTONE_PG_DIR"
    echo "==> PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on $KEYSTONE_PG_DIR"
}

keystone_pg_stop() {
    if [ -n "${KEYSTONE_PG_DIR:-}" ] && [ -d "$KEYSTONE_PG_DIR/data" ]; then
        "${KEYSTONE_PG_AS[@]}" "$KEYSTONE_PG_CTL" -D "$KEYSTONE_PG_DIR/data" -m immediate stop \
            >/dev/null 2>&1 || true
        rm -rf "$KEYSTONE_PG_DIR"
    fi
}
