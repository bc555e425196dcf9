# Sourced by run_all.sh and run_tests.sh: create or reuse a virtual environment and install r2mr into it,
# with the extras the caller needs (R2MR_EXTRAS: "notebooks" by default, run_tests.sh asks for "test").
#
# Everything goes through pip exactly as this machine configures it (pip.conf, PIP_INDEX_URL,
# PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS): PyTorch's version is pinned in pyproject.toml, and which build you get
# (CPU or CUDA) is your pip's or conda's choice: see README "Set-up". Nothing here names a package index.
#
# R2MR_VENV overrides the venv folder (default .venv); R2MR_NO_VENV=1 uses the current Python as is (e.g. an
# activated conda environment made from environment.yml). A stamp in the environment makes a second call
# return at once unless pyproject.toml or the extras changed.
set -euo pipefail
if [ "${R2MR_NO_VENV:-0}" != "1" ]; then
  VENV="${R2MR_VENV:-.venv}"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[r2mr] creating virtual environment $VENV"
    python3 -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
fi
R2MR_EXTRAS="${R2MR_EXTRAS:-notebooks}"
STAMP="$(python -c 'import sys; print(sys.prefix)')/.r2mr-installed"
WANT="$( (cat pyproject.toml; echo "extras=$R2MR_EXTRAS"; python -c 'import sys; print(sys.version)') | sha1sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! python -c "
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in ('r2mr', 'torch', 'numpy', 'ipykernel')))" >/dev/null 2>&1; then
  echo "[r2mr] installing r2mr[$R2MR_EXTRAS] and its dependencies (torch pinned in pyproject.toml) with pip"
  python -m pip install -q -e ".[$R2MR_EXTRAS]"
  python -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
  echo "$WANT" > "$STAMP"
fi
