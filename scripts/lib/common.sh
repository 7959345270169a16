# shellcheck shell=bash
# Shared by scripts/run, scripts/test and the Justfile: paths, target folders and the install
# steps a fresh machine needs. Source it (`source scripts/lib/common.sh`); it runs nothing.
#
# Target folders (both may be overridden from the environment):
#   CARGO_TARGET_DIR            host workspace (root), default ~/.cache/sluice/target
#   SLUICE_PLUGINS_TARGET_DIR   plugins workspace, default plugins/target; tests/build.rs
#                               builds the components there too, so nothing is built twice.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
root_target="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"
plugins_target="${SLUICE_PLUGINS_TARGET_DIR:-$repo/plugins/target}"
export SLUICE_PLUGINS_TARGET_DIR="$plugins_target"

wasm_target=wasm32-wasip2
# Components scripts/run installs: the reference domains only (never the test plugins).
reference_plugins=(bank_account accounts_projection post posts_projection account_notifier)

# The Python tools of the API checks: openapi-spec-validator (tests/tests/openapi.rs) and
# schemathesis (scripts/schemathesis), in a venv of their own, installed once per pinned set.
# The tests find it through SLUICE_API_TOOLS.
api_tools="${SLUICE_API_TOOLS:-$HOME/.cache/sluice/api-tools}"
export SLUICE_API_TOOLS="$api_tools"
api_tools_requirements=(openapi-spec-validator==0.9.0 schemathesis==4.32.5)

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# cargo in the root workspace (host, tests, benches).
root_cargo() { (cd "$repo" && CARGO_TARGET_DIR="$root_target" cargo "$@"); }
# cargo in the plugins workspace (its own lock file and .cargo/config.toml).
plugins_cargo() { (cd "$repo/plugins" && CARGO_TARGET_DIR="$plugins_target" cargo "$@"); }

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
    die "cargo and rustc are needed: install Rust with rustup, then run this again"
  fi
}

# The wasm32-wasip2 standard library, from rustup; if the download fails, from the archive
# this workplace keeps beside the repository (only for the exact rustc it was built for).
ensure_wasm_target() {
  local sysroot version fallback
  sysroot="$(cd "$repo" && rustc --print sysroot)"
  [[ -d "$sysroot/lib/rustlib/$wasm_target/lib" ]] && return 0
  say "installing the $wasm_target target"
  if command -v rustup >/dev/null 2>&1 && (cd "$repo" && rustup target add "$wasm_target"); then
    return 0
  fi
  version="$(cd "$repo" && rustc -V | awk '{print $2}')"
  fallback="$repo/../shared/toolchain/rust-std-$version-$wasm_target.tar.xz"
  if [[ -f "$fallback" ]]; then
    say "rustup could not install $wasm_target; unpacking $fallback"
    tar -xJf "$fallback" -C "$sysroot/lib/rustlib/"
    [[ -d "$sysroot/lib/rustlib/$wasm_target/lib" ]] && return 0
  fi
  die "cannot install the $wasm_target target: run 'rustup target add $wasm_target' and try again"
}

# rustfmt and clippy, for scripts/test.
ensure_lint_tools() {
  local tool component
  for tool in fmt clippy; do
    component="$tool"
    [[ "$tool" == fmt ]] && component=rustfmt
    if ! (cd "$repo" && cargo "$tool" --version >/dev/null 2>&1); then
      say "installing $component"
      (cd "$repo" && rustup component add "$component") || die "cannot install $component: run 'rustup component add $component'"
    fi
  done
}

build_plugins() {
  say "building the plugins ($wasm_target, release) into $plugins_target"
  plugins_cargo build --release --target "$wasm_target"
}

build_host() {
  say "building the host into $root_target"
  root_cargo build -p sluice
}

sluice_bin() { printf '%s/debug/sluice\n' "$root_target"; }

# The optimised host, which scripts/run serves: a newcomer's first figures are of the right binary.
build_host_release() {
  say "building the host (release) into $root_target"
  root_cargo build --release -p sluice
}

sluice_release_bin() { printf '%s/release/sluice\n' "$root_target"; }

plugins_out() { printf '%s/%s/release\n' "$plugins_target" "$wasm_target"; }

# Copy the reference components into DIR, atomically (a running host may be watching it)
# and only when they changed.
install_plugins() {
  local dir="$1" name from
  mkdir -p "$dir"
  for name in "${reference_plugins[@]}"; do
    from="$(plugins_out)/$name.wasm"
    [[ -f "$from" ]] || die "$from is missing after the plugin build"
    if ! cmp -s "$from" "$dir/$name.wasm"; then
      cp "$from" "$dir/.$name.wasm.tmp"
      mv -f "$dir/.$name.wasm.tmp" "$dir/$name.wasm"
    fi
  done
  say "installed ${reference_plugins[*]} into $dir"
}

# Install the API tools' venv unless it already holds the pinned set.
ensure_api_tools() {
  local stamp="$api_tools/.installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "${api_tools_requirements[*]}" ]]; then
    return 0
  fi
  say "installing ${api_tools_requirements[*]} into $api_tools"
  python3 -m venv "$api_tools" || return 1
  "$api_tools/bin/pip" install --quiet --disable-pip-version-check "${api_tools_requirements[@]}" || return 1
  printf '%s' "${api_tools_requirements[*]}" >"$stamp"
}
