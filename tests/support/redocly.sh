# Sourced by tests/run.sh: `@redocly/cli`, the OpenAPI linter client teams run on the API
# document (its recommended rules), from the npm registry into target/tools/, with the
# machine's Node.js (installed with apt-get when missing). Exports KEYSTONE_REDOCLY; the
# contract tests lint the committed document with it and expect no error and no warning.

KEYSTONE_REDOCLY_VERSION=2.77.0

keystone_redocly_setup() {
    local dir="target/tools/redocly-$KEYSTONE_REDOCLY_VERSION"
    if [ ! -x "$dir/node_modules/.bin/redocly" ]; then
        echo "==> installing @redocly/cli $KEYSTONE_REDOCLY_VERSION into $dir"
        if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
        fi
        mkdir -p "$dir"
        npm install --silent --no-audit --no-fund --prefix "$dir" \
            "@redocly/cli@$KEYSTONE_REDOCLY_VERSION" >/dev/null
    fi
    export KEYSTONE_REDOCLY="$PWD/$dir/node_modules/.bin/redocly"
    echo "==> redocly $("$KEYSTONE_REDOCLY" --version 2>/dev/null | tail -1)"
}
