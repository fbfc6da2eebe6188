#!/usr/bin/env bash
# Usage: [GPUS=8] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# Env: GPUS (8), GPUS_PER_NODE (8; 0 on CPU-only nodes), TASKS_PER_NODE,
# CPUS_PER_TASK (5), SRUN_ARGS (""), PYTHON; see tools/slurm_srun.sh and
# docs/distributed.md.
set -euo pipefail
TOOLS="$(cd "$(dirname "$0")" && pwd)"
exec bash "${TOOLS}/slurm_srun.sh" "$1" "$2" "${TOOLS}/train.py" "$3" \
    --work-dir="$4" "${@:5}"
