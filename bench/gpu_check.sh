#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): one short run of the CUDA path on one GPU,
# <= 8 minutes, one printed table. `--dry-run` prints the plan (no GPU needed).
#   bash bench/gpu_check.sh [--dry-run] [--compile] [--steps N] [--skip-workflow]
# Uses .venv/bin/python when present (make setup), else python3; on a fresh GPU
# machine install the project first (pip install -e . with the CUDA torch build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec timeout 480 "$PY" bench/gpu_check.py "$@"
