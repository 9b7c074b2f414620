#!/usr/bin/env bash
# Create .venv with polyjepa installed (editable, with test tools). Idempotent: a second run is fast.
# On a machine without an NVIDIA GPU it installs the CPU build of torch first (an unpinned torch pulls a
# multi-GB CUDA build); then it pins whatever torch is installed so that later installs keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    .venv/bin/pip install -q torch
  else
    .venv/bin/pip install -q -c constraints.txt torch
  fi
fi
pin=$(mktemp)
trap 'rm -f "$pin"' EXIT
.venv/bin/python -W ignore -c "import torch; print('torch==' + torch.__version__)" > "$pin"
# Reinstall when pyproject.toml changed since the last install (new dependencies or extras).
stamp=.venv/.polyjepa-pyproject.sha256
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "import polyjepa, pytest, lightning_fabric" 2>/dev/null; then
  .venv/bin/pip install -q -c "$pin" -e ".[dev]"
  echo "$want" > "$stamp"
fi
