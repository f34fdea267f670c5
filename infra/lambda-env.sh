# Sourced by infra/build.sh and infra/sam-build.sh: the tools and the compiler settings for
# Lambda builds.
#
# Lambda binaries are built with the release profile tightened through Cargo's environment
# overrides (the local stack keeps the quicker-to-build release profile of Cargo.toml):
#   fat LTO and one codegen unit  -> smaller, faster code, the least to load at cold start;
#   stripped symbols              -> smaller zip, faster download into the microVM;
#   panic = unwind (the default)  -> lambda_runtime catches a panicking invocation and
#                                    reports it as that invocation's error, keeping the warm
#                                    container; with abort the process dies and the next
#                                    request pays a cold start. We never panic by design, so
#                                    the few KiB unwinding costs buy resilience, not speed.

export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_STRIP=symbols
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3
export CARGO_PROFILE_RELEASE_PANIC=unwind

keystone_lambda_tools() {
    local venv="target/tools/lambda"
    if [ ! -x "$venv/bin/cargo-lambda" ] || [ ! -x "$venv/bin/python-zig" ]; then
        echo "==> installing cargo-lambda and ziglang into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet cargo-lambda ziglang
    fi
    export PATH="$PWD/$venv/bin:$PATH"
    rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$' \
        || rustup target add aarch64-unknown-linux-gnu
}

# Lambda binaries: every [[bin]] under functions/ except crates marked lambda = false.
keystone_lambda_binaries() {
    local manifest
    for manifest in functions/*/Cargo.toml; do
        grep -q '^lambda = false' "$manifest" && continue
        awk '/^\[\[bin\]\]/ { bin = 1; next } bin && /^name = / { gsub(/"/, "", $3); print $3; bin = 0 }' "$manifest"
    done
}
