#!/usr/bin/env bash
# `sam build` of infra/template.yaml: builds every function with cargo-lambda (arm64) into
# infra/.aws-sam/build, ready for `sam deploy`. aws-sam-cli lives in its own virtualenv under
# target/ because it pulls in a cfn-lint (1.58) that no longer applies the SAM transform; the
# tests keep using 1.51 (tests/support/cfn-lint.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lambda-env.sh
source infra/lambda-env.sh
keystone_lambda_tools

sam_venv="target/tools/sam"
if [ ! -x "$sam_venv/bin/sam" ]; then
    echo "==> installing aws-sam-cli into $sam_venv"
    python3 -m venv "$sam_venv"
    "$sam_venv/bin/pip" install --quiet aws-sam-cli
fi

cd infra
# CodeUri is the workspace root (../) for every function and BuildProperties.Binary names the
# binary: SAM's rust-cargolambda builder runs `cargo lambda build --release --arm64 --bin …`
# in the workspace, once per function. SAM needs its beta-features flag for this builder.
SAM_CLI_TELEMETRY=0 "../$sam_venv/bin/sam" build --beta-features "$@"
