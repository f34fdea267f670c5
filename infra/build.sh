#!/usr/bin/env bash
# Builds every Lambda's bootstrap for arm64 (provided.al2023) with cargo-lambda, into
# target/lambda-arm64/<binary>/bootstrap, and prints their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lambda-env.sh
source infra/lambda-env.sh
keystone_lambda_tools

mapfile -t binaries < <(keystone_lambda_binaries)
bin_args=()
for binary in "${binaries[@]}"; do bin_args+=(--bin "$binary"); done

cargo lambda build --release --arm64 --lambda-dir target/lambda-arm64 "${bin_args[@]}"

echo
echo "bootstrap sizes (arm64, stripped):"
for binary in "${binaries[@]}"; do
    stat -c %s "target/lambda-arm64/$binary/bootstrap" \
        | awk -v name="$binary" '{ printf "  %-22s %6.1f MiB\n", name, $1 / 1048576 }'
done
