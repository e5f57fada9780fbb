#!/usr/bin/env bash
# Set up coupled-quality (idempotent) and run it.
#   ./quickstart.sh            set up, then `doit`: the bundled demo pack end to end
#   ./quickstart.sh test       set up, then run the test suite
#   ./quickstart.sh doit ARGS  set up, then `doit ARGS`
# Needs Python >= 3.11 (no Node: the pages' npm packages are fetched by Python). Installs Debian's chromium
# when no Chromium is found.
set -euo pipefail
cd "$(dirname "$0")"

have_chromium() {
    [ -n "${CQ_CHROMIUM:-}" ] && [ -x "$CQ_CHROMIUM" ] && return 0
    ls "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}"/chromium*/chrome-linux*/chrome >/dev/null 2>&1 && return 0
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if ! have_chromium; then
    echo "quickstart: installing Debian's chromium (apt-get)"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

# Python deps in a project venv; reinstalled only when pyproject.toml changes.
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.cq-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "quickstart: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    # torch first, one pinned CPU build, so CI and a fresh checkout stay light (pyproject accepts torch>=2.4,
    # for which PyPI's Linux wheel brings GBs of CUDA packages): a local wheel where pip's config has one,
    # else PyTorch's CPU index
    .venv/bin/python -m pip install -q "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu
    .venv/bin/python -m pip install -q -e ".[test]"
    echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

doit web_deps >/dev/null   # the pinned renderer from the npm registry, only when the lock file changed

case "${1:-}" in
    test) shift; exec python -m pytest "$@" ;;
    doit) shift; exec doit "$@" ;;
    "") exec doit ;;
    *) echo "usage: ./quickstart.sh [test [PYTEST ARGS] | doit [DOIT ARGS]]" >&2; exit 2 ;;
esac
