# Sourced by run_all.sh and run_tests.sh: create or reuse a virtual environment and install r2mr into it.
# Without a GPU, PyTorch comes from the CPU wheel index (small and fast); with one, the default CUDA build.
# R2MR_VENV overrides the venv folder (default .venv); R2MR_NO_VENV=1 uses the current Python as is.
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
TORCH_VERSION="2.13.0"
if ! python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "[r2mr] installing torch==$TORCH_VERSION (CUDA build)"
    python -m pip install -q "torch==$TORCH_VERSION"
  else
    echo "[r2mr] installing torch==$TORCH_VERSION (CPU build)"
    if python -c "import socket; socket.create_connection(('download.pytorch.org', 443), timeout=3)" >/dev/null 2>&1; then
      python -m pip install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple
    else  # no route to the CPU index: a pip mirror or local wheel directory must provide it
      python -m pip install -q "torch==$TORCH_VERSION"
    fi
  fi
fi
STAMP="$(python -c 'import sys; print(sys.prefix)')/.r2mr-installed"
WANT="$(cat pyproject.toml | sha1sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! python -c "import r2mr, papermill, nbval" >/dev/null 2>&1; then
  echo "[r2mr] installing r2mr and its dependencies"
  python -m pip install -q -e .
  python -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
  echo "$WANT" > "$STAMP"
fi
