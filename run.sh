#!/usr/bin/env bash
# The main command: sets up .venv if needed, then runs the whole pipeline on the built-in default config.
# Extra arguments go to `xaimm run`, e.g. ./run.sh --out runs/mine --set train.epochs=1
set -euo pipefail
cd "$(dirname "$0")"
source tools/venv.sh
exec xaimm run --config "${XAIMM_CONFIG:-configs/default.yaml}" "$@"
