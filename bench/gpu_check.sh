#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): one short run of the CUDA path on one GPU,
# <= 8 minutes, a table printed row by row as measured (a crash or the limit
# keeps the rows done). `--dry-run` prints the plan (no GPU needed); `--smoke`
# runs tiny rows on the CPU (a check of the script itself).
#   bash bench/gpu_check.sh [--dry-run] [--compile] [--steps N] [--skip-workflow] [--smoke]
# Uses .venv/bin/python when present (make setup), else python3; on a fresh GPU
# machine install the project first (pip install -e . with the CUDA torch build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec timeout 480 "$PY" -u bench/gpu_check.py "$@"
