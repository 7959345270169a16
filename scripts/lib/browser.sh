# shellcheck shell=bash
# The dashboard's browser test (tests/tests/dashboard_browser.rs, which runs
# tests/browser/dashboard.test.mjs with node) needs Debian's `chromium` and `playwright-core`
# from npm — no browser download. Source after scripts/lib/common.sh; `ensure_browser` installs
# both when missing (chromium with apt-get: about 40 s on a machine with fresh package lists;
# playwright-core with `npm ci`, its cache under ~/.cache/sluice/npm: about 5 s) and then sets
# SLUICE_REQUIRE_BROWSER=1, so the test fails rather than skips. Where chromium cannot be
# installed (no root, no sudo, no apt) it says so and the test skips — except with CI=true,
# where that is a failure.

browser_dir="$repo/tests/browser"

ensure_chromium() {
  if [[ -n "${SLUICE_CHROMIUM:-}" && -x "$SLUICE_CHROMIUM" ]] || [[ -x /usr/bin/chromium ]]; then
    return 0
  fi
  local apt=()
  if ! command -v apt-get >/dev/null 2>&1; then
    say "cannot install chromium: no apt-get here (install it, or set SLUICE_CHROMIUM=/path/to/chromium)"
    return 1
  elif [[ $EUID -eq 0 ]]; then
    apt=(apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt=(sudo -n apt-get)
  else
    say "cannot install chromium: not root and no password-less sudo"
    return 1
  fi
  say "installing chromium with apt-get"
  local started=$SECONDS
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends chromium; then
    "${apt[@]}" update && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends chromium || return 1
  fi
  say "chromium installed in $((SECONDS - started)) s"
}

# playwright-core as tests/browser/package-lock.json pins it; again only when the lock changed.
ensure_playwright() {
  local stamp="$browser_dir/node_modules/.sluice-lock-sha256" want
  want="$(sha256sum "$browser_dir/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v npm >/dev/null 2>&1 || { say "cannot install playwright-core: no npm (Node 20 is needed)"; return 1; }
  (cd "$browser_dir" && npm ci --no-audit --no-fund --cache "$HOME/.cache/sluice/npm") || return 1
  printf '%s\n' "$want" >"$stamp"
}

ensure_browser() {
  if ensure_chromium && ensure_playwright; then
    export SLUICE_REQUIRE_BROWSER=1
    return 0
  fi
  if [[ "${CI:-}" == true ]]; then
    say "CI=true: the dashboard browser test must run, and chromium or playwright-core is missing"
    export SLUICE_REQUIRE_BROWSER=1
    return 1
  fi
  say "SKIPPING the dashboard browser test: chromium or playwright-core cannot be installed here"
}

# The browser test alone; the screenshot's path is printed at the end.
browser_test() {
  ensure_browser || return 1
  root_cargo test -p sluice-e2e --test dashboard_browser || return 1
  if [[ -f "$root_target/tmp/dashboard.png" ]]; then
    say "dashboard screenshot: $root_target/tmp/dashboard.png"
  fi
}
