#!/usr/bin/env bash
# Builds or tests a Python plugin: `build.sh build PLUGIN_DIR OUT.wasm` or `build.sh test PLUGIN_DIR`.
# componentize-py (PyPI, pinned in requirements.txt, installed by scripts/lib/polyglot.sh) bundles
# CPython with the plugin's modules; `app.py` holds the class of the exported interface. The tests
# run natively against the WIT bindings componentize-py generates (their imports are stubs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The WIT: a wit/ folder beside this script (a `sluice new` project), else the repository's.
wit="$here/../../wit/v0.1"
[[ -d "$here/wit" ]] && wit="$here/wit"
wit="${SLUICE_WIT:-$wit}"
world="${SLUICE_WORLD:-projection-plugin}"
componentize_py="${COMPONENTIZE_PY:-componentize-py}"
python="${PYTHON:-python3}"
action="${1:?usage: build.sh build|test PLUGIN_DIR [OUT.wasm]}"
plugin="$(cd "${2:?usage: build.sh build|test PLUGIN_DIR [OUT.wasm]}" && pwd)"
bindings="$(mktemp -d)"
trap 'rm -rf "$bindings"' EXIT
case "$action" in
  build)
    out="${3:?usage: build.sh build PLUGIN_DIR OUT.wasm}"
    "$componentize_py" -d "$wit" -w "$world" componentize -p "$plugin" -p "$here" app -o "$out"
    ;;
  test)
    "$componentize_py" -d "$wit" -w "$world" bindings "$bindings"
    cd "$plugin"
    PYTHONPATH="$bindings:$plugin:$here" "$python" -m unittest discover -s "$plugin" -p 'test_*.py' -v
    ;;
  *) echo "build.sh: unknown action $action" >&2; exit 2 ;;
esac
