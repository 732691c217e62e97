#!/usr/bin/env bash
# The main command: sets up .venv if needed, then runs the whole pipeline on the built-in `default` config
# (XAIMM_CONFIG=tiny, or a YAML path, picks another).
# Extra arguments go to `xaimm run`, e.g. ./run.sh --out runs/mine --set train.epochs=1
set -euo pipefail
cd "$(dirname "$0")"
source tools/venv.sh
exec xaimm run --config "${XAIMM_CONFIG:-default}" "$@"
