# Sluice recipes for people who have `just`; each mirrors a script (scripts/*), which stay the
# reference. Target folders as in scripts/lib/common.sh.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

# List the recipes.
default:
    @just --list

# Build the host and the reference plugins, install them, run `sluice serve ARGS...`.
run *ARGS:
    scripts/run "$@"

# Every check and test, as CI runs them.
test:
    scripts/test

# Benchmarks: Wasm plugins against the same logic compiled natively.
bench *ARGS:
    scripts/bench "$@"

# Load over HTTP against a real release `sluice serve`, in windows as the log grows.
bench-http *ARGS:
    scripts/bench --http-bench "$@"

# Format both workspaces.
fmt:
    source scripts/lib/common.sh && root_cargo fmt --all && plugins_cargo fmt --all

# Lint both workspaces as scripts/test does (plugins natively and as wasm32-wasip2).
clippy:
    source scripts/lib/common.sh && root_cargo clippy --workspace --all-targets -- -D warnings
    source scripts/lib/common.sh && plugins_cargo clippy --workspace --all-targets -- -D warnings
    source scripts/lib/common.sh && plugins_cargo clippy --workspace --target "$wasm_target" -- -D warnings

# Build the plugin components (target/wasm32-wasip2/release/*.wasm under the plugins target).
plugins:
    source scripts/lib/common.sh && ensure_wasm_target && build_plugins

# Local servers for the scale-out tests: start, stop or status.
servers ACTION="status":
    scripts/servers "{{ACTION}}"

# Generated bad input, long: REQUESTS per read store (SQLite, PostgreSQL, MariaDB; starts the
# local servers), SEED to replay a failure (default: from the clock, printed); then schemathesis
# against a real host's /openapi.json, 500 cases per operation (as `fuzz-api`).
fuzz REQUESTS="20000" SEED="":
    #!/usr/bin/env bash
    set -euo pipefail
    source scripts/lib/common.sh
    while read -r name url; do
      case "$name" in
        postgres) export SLUICE_TEST_POSTGRES_URL="$url" ;;
        mariadb) export SLUICE_TEST_MYSQL_URL="$url" ;;
      esac
    done < <(scripts/servers start)
    export SLUICE_REQUIRE_SERVERS=1 SLUICE_FUZZ_REQUESTS="$1"
    if [[ -n "$2" ]]; then export SLUICE_FUZZ_SEED="$2"; fi
    root_cargo test -p sluice-e2e --test generated_input -- --nocapture
    scripts/schemathesis 500

# Schemathesis against a real host's /openapi.json alone: EXAMPLES cases per operation
# (scripts/test runs 20), SEED (a number) to replay a run (default: random, printed).
fuzz-api EXAMPLES="500" SEED="":
    scripts/schemathesis "$@"
