# Sourced by run_all.sh and run_tests.sh: create or reuse a virtual environment and install r2mr into it,
# with the extras the caller needs (R2MR_EXTRAS: "notebooks" by default, run_tests.sh asks for "test").
#
# Everything goes through pip exactly as this machine configures it (pip.conf, PIP_INDEX_URL,
# PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS): PyTorch's version is pinned in pyproject.toml, and which build you get
# (CPU or CUDA) is your pip's or conda's choice: see docs/reproducibility.md. Nothing here names a package index.
#
# R2MR_VENV overrides the venv folder (default .venv); R2MR_NO_VENV=1 installs into the current Python instead
# of a venv (e.g. an activated conda environment made from environment.yml). Versions: constraints.txt. A stamp
# in the environment makes a second call return at once unless pyproject.toml or constraints.txt changed or an
# extra is missing (extras accumulate: run_all.sh after
# run_tests.sh adds [notebooks] to [test], it does not swap them). The Jupyter kernel "r2mr" is installed into the
# environment, never under $HOME.
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
# The stamp: a hash of pyproject.toml, constraints.txt (the exact versions) and the Python version, then the
# extras installed, one per line.
STAMP="$(python -c 'import sys; print(sys.prefix)')/.r2mr-installed"
HASH="$( (cat pyproject.toml constraints.txt; python -c 'import sys; print(sys.version)') | sha1sum | cut -c1-16)"
HAVE=""
if [ "$(head -n 1 "$STAMP" 2>/dev/null)" = "$HASH" ]; then HAVE="$(tail -n +2 "$STAMP")"; fi
MISSING=""
for extra in ${R2MR_EXTRAS//,/ }; do
  grep -qx "$extra" <<<"$HAVE" || MISSING="$MISSING $extra"
done
if [ -n "$MISSING" ] || ! python -c "
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in ('r2mr', 'torch', 'numpy', 'ipykernel')))" >/dev/null 2>&1; then
  EXTRAS_ALL="$(printf '%s\n' $HAVE ${R2MR_EXTRAS//,/ } | sort -u | paste -sd, -)"
  echo "[r2mr] installing r2mr[$EXTRAS_ALL] and its dependencies (torch pinned in pyproject.toml) with pip"
  python -m pip install -q -c constraints.txt -e ".[$EXTRAS_ALL]"
  { echo "$HASH"; tr ',' '\n' <<<"$EXTRAS_ALL"; } > "$STAMP"
fi
# The notebooks' kernel, inside this environment (--sys-prefix) under the package's own name: the pipeline
# asks papermill for it by name, and nothing under $HOME (a user's own "python3" kernel) is touched.
# (IPython would make ~/.ipython on import: its folder for this one command is inside the environment too.)
PREFIX="$(python -c 'import sys; print(sys.prefix)')"
if [ ! -f "$PREFIX/share/jupyter/kernels/r2mr/kernel.json" ]; then
  mkdir -p "$PREFIX/etc/ipython"
  IPYTHONDIR="$PREFIX/etc/ipython" python -m ipykernel install --sys-prefix --name r2mr \
    --display-name "Python 3 (r2mr)" >/dev/null
fi
