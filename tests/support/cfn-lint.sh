# Sourced by tests/run.sh: picks the CloudFormation linter the infra tests run.
#
# cfn-lint 1.58 (what aws-sam-cli pulls in) no longer applies the SAM transform and passes
# broken SAM templates; 1.51 applies it. Use an installed 1.51.x, else install 1.51.5 into a
# private virtualenv under target/ so nothing else on the machine is changed.

KEYSTONE_CFN_LINT_VERSION=1.51.5

keystone_cfn_lint_setup() {
    if command -v cfn-lint >/dev/null 2>&1 && cfn-lint --version 2>/dev/null | grep -q "cfn-lint 1\.51\."; then
        KEYSTONE_CFN_LINT="$(command -v cfn-lint)"
    else
        local venv="target/tools/cfn-lint-$KEYSTONE_CFN_LINT_VERSION"
        if [ ! -x "$venv/bin/cfn-lint" ]; then
            echo "==> installing cfn-lint $KEYSTONE_CFN_LINT_VERSION into $venv"
            if ! python3 -m venv "$venv" >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
                python3 -m venv "$venv"
            fi
            "$venv/bin/pip" install --quiet "cfn-lint==$KEYSTONE_CFN_LINT_VERSION"
        fi
        KEYSTONE_CFN_LINT="$PWD/$venv/bin/cfn-lint"
    fi
    export KEYSTONE_CFN_LINT
    echo "==> $("$KEYSTONE_CFN_LINT" --version)"
}
