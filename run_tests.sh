#!/usr/bin/env bash
# The test command (README, CI): set up the environment if needed (r2mr with its [test] extra), then run the
# test suite (unit tests and the notebooks under nbval). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
export R2MR_EXTRAS="${R2MR_EXTRAS:-test}"
source scripts/ensure_env.sh
export MPLBACKEND=Agg
python -m pytest "$@"
