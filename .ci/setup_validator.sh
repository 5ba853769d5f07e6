#!/usr/bin/env bash
# Install the official FinOps FOCUS validator (PyPI focus-validator==2.2.1) into its own venv.
#
# Why a separate venv: focus-validator 2.2.1 requires Python >= 3.12 (on 3.11 pip silently
# resolves to 1.0.0) and pins polars<2 / pandera<0.27, which clash with the project's polars 2.
# pyarrow is capped below 22 (newer pyarrow breaks the validator's polars<2 parquet path).
#
# Idempotent: does nothing when the venv already holds focus-validator at the pinned version.
# When no Python 3.12 can be found it prints why and exits 0, so the validator tests skip.
#
# Usage (from the repo root):  bash .ci/setup_validator.sh
# Env:  FOCUS_VALIDATOR_VENV   venv location (default .data/validator-venv)
#       FOCUS_VALIDATOR_PYTHON explicit Python >= 3.12 interpreter to build the venv from
set -euo pipefail

VALIDATOR_VERSION="2.2.1"
VENV="${FOCUS_VALIDATOR_VENV:-.data/validator-venv}"

log() { echo "[setup_validator] $*"; }

is_py312plus() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python312() {
    local cand
    if [ -n "${FOCUS_VALIDATOR_PYTHON:-}" ] && is_py312plus "$FOCUS_VALIDATOR_PYTHON"; then
        echo "$FOCUS_VALIDATOR_PYTHON"; return 0
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local root
        root="$(pyenv root 2>/dev/null || true)"
        if [ -n "$root" ]; then
            for cand in "$root"/versions/3.12*/bin/python3.12; do
                if [ -x "$cand" ] && is_py312plus "$cand"; then echo "$cand"; return 0; fi
            done
        fi
    fi
    # The pyenv shim only answers when a 3.12 version is selected.
    if command -v python3.12 >/dev/null 2>&1; then
        if is_py312plus python3.12; then command -v python3.12; return 0; fi
        if PYENV_VERSION=3.12.1 python3.12 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
            PYENV_VERSION=3.12.1 python3.12 -c 'import sys; print(sys.executable)'; return 0
        fi
    fi
    for cand in /usr/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.13 /usr/local/bin/python3.13; do
        if [ -x "$cand" ] && is_py312plus "$cand"; then echo "$cand"; return 0; fi
    done
    return 1
}

# Already installed at the pinned version? Then nothing to do.
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$VALIDATOR_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
sys.exit(0 if version("focus-validator") == sys.argv[1] else 1)
PY
then
    log "focus-validator $VALIDATOR_VERSION already installed in $VENV"
    exit 0
fi

if ! PY312="$(find_python312)"; then
    log "no Python >= 3.12 found (focus-validator $VALIDATOR_VERSION needs it); skipping."
    log "the official-validator tests will be skipped."
    exit 0
fi
log "using $PY312 ($("$PY312" --version 2>&1))"

# A venv made by an interpreter < 3.12 (or half-built) is useless: rebuild it.
if [ -e "$VENV" ] && ! { [ -x "$VENV/bin/python" ] && is_py312plus "$VENV/bin/python"; }; then
    log "removing unusable venv at $VENV"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p "$(dirname "$VENV")"
    "$PY312" -m venv "$VENV"
fi

# (This machine's pip config lists local find-links folders that may not exist; pip warns
# about each one. Drop that noise; pipefail still propagates pip's own exit status.)
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "focus-validator==$VALIDATOR_VERSION" 'pyarrow<22' 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }

"$VENV/bin/python" - "$VALIDATOR_VERSION" <<'PY'
import sys
from importlib.metadata import version
got = version("focus-validator")
if got != sys.argv[1]:
    sys.exit(f"[setup_validator] expected focus-validator {sys.argv[1]}, got {got}")
print(f"[setup_validator] focus-validator {got} ready (polars {version('polars')}, pyarrow {version('pyarrow')})")
PY
