# Sourced by tests/run.sh: the current AWS SAM CLI (and the cfn-lint it bundles, which carries
# current AWS data such as retired engine versions), in a virtualenv under target/tools/sam
# shared with infra/sam-build.sh. Installed when missing and upgraded at most once a day, so
# the test command judges the template and samconfig.toml with what a new operator would
# install today. Exports KEYSTONE_SAM.

keystone_sam_setup() {
    local venv="target/tools/sam" stamp="target/tools/sam/.upgraded"
    if [ ! -x "$venv/bin/sam" ]; then
        echo "==> installing aws-sam-cli into $venv"
        if ! python3 -m venv "$venv" >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
            python3 -m venv "$venv"
        fi
        "$venv/bin/pip" install --quiet aws-sam-cli
        touch "$stamp"
    elif [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
        # A day old: take the newest release if the registry answers, else keep this one.
        "$venv/bin/pip" install --quiet --upgrade aws-sam-cli >/dev/null 2>&1 \
            && touch "$stamp" \
            || echo "==> could not upgrade aws-sam-cli; keeping the installed one"
    fi
    KEYSTONE_SAM="$PWD/$venv/bin/sam"
    export KEYSTONE_SAM
    echo "==> $(SAM_CLI_TELEMETRY=0 "$KEYSTONE_SAM" --version), $("$venv/bin/cfn-lint" --version)"
}
