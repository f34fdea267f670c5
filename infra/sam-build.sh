#!/usr/bin/env bash
# `sam build` of infra/template.yaml: builds every function with cargo-lambda (arm64) into
# infra/.aws-sam/build, ready for `sam deploy`. aws-sam-cli lives in its own virtualenv under
# target/tools/sam, the one the test command lints and parses samconfig.toml with.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lambda-env.sh
source infra/lambda-env.sh
keystone_lambda_tools

# shellcheck source=tests/support/sam.sh
source tests/support/sam.sh
keystone_sam_setup

cd infra
# CodeUri is the workspace root (../) for every function and BuildProperties.Binary names the
# binary: SAM's rust-cargolambda builder runs `cargo lambda build --release --arm64 --bin …`
# in the workspace, once per function. SAM needs its beta-features flag for this builder.
SAM_CLI_TELEMETRY=0 "$KEYSTONE_SAM" build --beta-features "$@"
