# Sourced by tests/run.sh: the headless browser of the `/docs` test (tests/tests/
# api_contract.rs), Debian's chromium, installed with apt-get when missing. Exports
# KEYSTONE_CHROMIUM for the test.

keystone_chromium_setup() {
    local bin
    bin="$(command -v chromium || true)"
    if [ -z "$bin" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "==> installing Chromium (apt-get install chromium)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || {
                apt-get update -q >/dev/null
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
            }
            bin=/usr/bin/chromium
        else
            echo "chromium not found; install the chromium package" >&2
            return 1
        fi
    fi
    export KEYSTONE_CHROMIUM="$bin"
    echo "==> $("$bin" --version 2>/dev/null | head -1)"
}
