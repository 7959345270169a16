# shellcheck shell=bash
# The JavaScript and Python plugin toolchains and builds; sourced after common.sh by
# scripts/polyglot and scripts/test. Runs nothing by itself.
#
# JavaScript: componentize-js (SpiderMonkey) from npm, pinned by plugins/js/package-lock.json and
# installed with `npm ci` into plugins/js/node_modules (npm's download cache in
# ~/.cache/sluice/npm); skipped while node_modules matches the lock file.
# Python: componentize-py from PyPI, pinned by plugins/python/requirements.txt, in a venv under
# ~/.cache/sluice/ named by the requirements' hash (pip's cache beside it).

cache_root="$HOME/.cache/sluice"
js_dir="$repo/plugins/js"
py_dir="$repo/plugins/python"
polyglot_out="$plugins_target/polyglot"

# elapsed STARTED: seconds since STARTED (a $SECONDS value), for the timing lines.
elapsed() { printf '%ss' "$((SECONDS - $1))"; }

ensure_js_toolchain() {
  local started=$SECONDS
  if ! command -v node >/dev/null 2>&1; then
    say "node (20 or later) is needed for the JavaScript plugins"
    return 1
  fi
  # node_modules/.sluice-lock holds the hash of the lock file it was installed from.
  if [[ "$(cat "$js_dir/node_modules/.sluice-lock" 2>/dev/null)" == "$(sha256sum <"$js_dir/package-lock.json")" ]]; then
    return 0
  fi
  say "installing the JavaScript plugin toolchain (npm ci in plugins/js)"
  (cd "$js_dir" && npm ci --cache "$cache_root/npm" --prefer-offline --no-audit --no-fund) || return 1
  sha256sum <"$js_dir/package-lock.json" >"$js_dir/node_modules/.sluice-lock"
  say "JavaScript toolchain installed in $(elapsed "$started")"
}

py_venv() { printf '%s/py-%s\n' "$cache_root" "$(sha256sum <"$py_dir/requirements.txt" | cut -c1-12)"; }

ensure_py_toolchain() {
  local started=$SECONDS venv
  venv="$(py_venv)"
  [[ -x "$venv/bin/componentize-py" ]] && return 0
  if ! command -v python3 >/dev/null 2>&1; then
    say "python3 (3.10 or later) is needed for the Python plugins"
    return 1
  fi
  say "installing the Python plugin toolchain into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || return 1
  "$venv/bin/pip" install --quiet --cache-dir "$cache_root/pip" -r "$py_dir/requirements.txt" || return 1
  say "Python toolchain installed in $(elapsed "$started")"
}

# The plugins: every folder of plugins/js and plugins/python holding a component entry.
js_plugins() { find "$js_dir" -mindepth 2 -maxdepth 2 -name component.js -not -path '*/node_modules/*' -printf '%h\n' | sort; }
py_plugins() { find "$py_dir" -mindepth 2 -maxdepth 2 -name app.py -printf '%h\n' | sort; }

test_polyglot() {
  local started=$SECONDS plugin venv
  venv="$(py_venv)"
  (cd "$js_dir" && node --test) || return 1
  while read -r plugin; do
    COMPONENTIZE_PY="$venv/bin/componentize-py" PYTHON="$venv/bin/python" "$py_dir/build.sh" test "$plugin" || return 1
  done < <(py_plugins)
  say "JavaScript and Python plugin tests ran in $(elapsed "$started")"
}

build_polyglot() {
  local out="$1" plugin name started venv
  venv="$(py_venv)"
  mkdir -p "$out"
  while read -r plugin; do
    name="$(basename "$plugin" | tr - _)"
    started=$SECONDS
    (cd "$js_dir" && node build.mjs "$plugin/component.js" "$out/$name.wasm") || return 1
    say "built $name.wasm (JavaScript) in $(elapsed "$started")"
  done < <(js_plugins)
  while read -r plugin; do
    name="$(basename "$plugin" | tr - _)"
    started=$SECONDS
    COMPONENTIZE_PY="$venv/bin/componentize-py" "$py_dir/build.sh" build "$plugin" "$out/$name.wasm" || return 1
    say "built $name.wasm (Python) in $(elapsed "$started")"
  done < <(py_plugins)
}

# `sluice new` for every template (kind and language) into a fresh folder; each skeleton must
# pass its own tests and build into a component. Every skeleton of a language is named
# `tide-LANG`, so its reactor reacts to its aggregate's events (`TideLangCreatedEvent`, …).
# The host loads the Rust skeletons and the projections here (`sluice plugins` lists them); the
# JavaScript and Python aggregates and reactors are kept in $template_out as KIND_LANG.wasm,
# where tests/tests/templates.rs serves them in a real host, sends commands and receives what
# the reactor sends (compiling each language runtime once there rather than twice).
template_kinds=(aggregate projection reactor)
template_langs=(rust js python)
template_out="$polyglot_out/templates"

# world_of KIND: the world a JavaScript or Python skeleton of KIND builds for.
world_of() {
  case "$1" in
    aggregate) echo upcasting-aggregate-plugin ;;
    projection) echo projection-plugin ;;
    reactor) echo reactor-plugin ;;
  esac
}

# template_one KIND LANG WORK: scaffold, test and build one skeleton in WORK/KIND-LANG.
template_one() {
  local kind="$1" lang="$2" work="$3" sluice venv name snake dir world wasm listed one started=$SECONDS
  sluice="$(sluice_bin)"
  venv="$(py_venv)"
  name="tide-$lang"
  snake="tide_$lang"
  dir="$work/$kind-$lang"
  world="$(world_of "$kind")"
  "$sluice" new "$kind" "$name" --lang "$lang" --dir "$dir" --sdk "$repo/plugins" || return 1
  wasm="$work/plugins/${kind}_$lang.wasm"
  case "$lang" in
    rust)
      # The plugins workspace's lock file and target folder: the skeleton's dependencies are the
      # reference plugins' (same versions, same profile), so they are already built there and
      # only the skeleton itself compiles (a separate target took 16 min on 2 cores).
      cp "$repo/plugins/Cargo.lock" "$dir/Cargo.lock" || return 1
      (cd "$dir" && CARGO_TARGET_DIR="$plugins_target" cargo test --quiet \
        && CARGO_TARGET_DIR="$plugins_target" cargo component-build --quiet) || return 1
      cp "$plugins_target/wasm32-wasip2/release/$snake.wasm" "$wasm" || return 1
      ;;
    js)
      # The skeleton's package-lock.json is plugins/js's, whose toolchain `npm ci` installed
      # (ensure_js_toolchain): the same packages, so it links them instead of a second install.
      ln -s "$js_dir/node_modules" "$dir/node_modules" || return 1
      (cd "$dir" && node --test && node build.mjs component.js "$wasm" "$world") || return 1
      ;;
    python)
      (cd "$dir" && export SLUICE_WORLD="$world" && COMPONENTIZE_PY="$venv/bin/componentize-py" \
        PYTHON="$venv/bin/python" ./build.sh test . \
        && COMPONENTIZE_PY="$venv/bin/componentize-py" ./build.sh build . "$wasm") || return 1
      ;;
  esac
  if [[ "$lang" != rust && "$kind" != projection ]]; then
    cp "$wasm" "$template_out/" || return 1
    say "sluice new $kind --lang $lang: tested and built in $(elapsed "$started") (served by tests/tests/templates.rs)"
    return 0
  fi
  # The host loads it: its manifest is listed. A reactor loads only with its channel granted.
  one="$work/one-$kind-$lang"
  mkdir -p "$one/plugins" && cp "$wasm" "$one/plugins/" || return 1
  printf '[channels.%s]\nwebhook = "http://127.0.0.1:9/unused"\n' "$snake" >"$one/granted.toml"
  listed="$("$sluice" --config "$one/granted.toml" plugins --plugins "$one/plugins" --data-dir "$one/data")" || return 1
  if ! grep -qi "$snake\|tide$lang" <<<"$listed"; then
    say "the host did not load the $lang $kind skeleton: $listed"
    return 1
  fi
  say "sluice new $kind --lang $lang: tested, built and loaded in $(elapsed "$started")"
}

# Every template, one lane per language side by side (building a JavaScript or Python component
# uses one core; on two cores the lanes take about the time of the longest one instead of the
# sum). Rust skeletons share the plugins' target folder, so their lane runs them one by one. Each
# lane's output is shown when all are done.
test_templates() {
  local work lang kind i status=0 started=$SECONDS
  local -a pids=()
  work="$(mktemp -d)"
  mkdir -p "$work/plugins" "$template_out"
  for lang in "${template_langs[@]}"; do
    (for kind in "${template_kinds[@]}"; do template_one "$kind" "$lang" "$work" || exit 1; done) >"$work/$lang.log" 2>&1 &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    lang="${template_langs[$i]}"
    if ! wait "${pids[$i]}"; then
      status=1
      say "sluice new --lang $lang: FAILED (its output follows)"
    fi
    cat "$work/$lang.log" >&2
  done
  say "every template in $(elapsed "$started")"
  rm -rf "$work"
  return "$status"
}

ensure_js_toolchain_and_py() { ensure_js_toolchain && ensure_py_toolchain; }
