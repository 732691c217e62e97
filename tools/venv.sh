#!/usr/bin/env bash
# Sourced by run.sh and test.sh: create/refresh .venv only when pyproject.toml or this file changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.xaimm-installed"
want="$(cat "$root/pyproject.toml" "$root/tools/venv.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv" >&2
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing dependencies into .venv (first run: a few minutes)" >&2
  "$venv/bin/pip" install -q --upgrade pip >&2
  # exact pins: pip takes these from the machine's local wheels; other combos fail to import torchvision
  "$venv/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1" >&2
  "$venv/bin/pip" install -q -e "$root[dev]" "torch==2.14.1" "torchvision==0.29.1" >&2
  echo "$want" > "$stamp"
else
  echo "[setup] .venv up to date" >&2
fi
export PATH="$venv/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-$HF_HUB_OFFLINE}"
export MPLBACKEND="${MPLBACKEND:-Agg}"
export TOKENIZERS_PARALLELISM=false
