#!/usr/bin/env bash
# Usage: [GPUS=8] bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
# Env: as tools/slurm_train.sh (GPUS, GPUS_PER_NODE (0 on CPU-only nodes),
# TASKS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PYTHON); see docs/distributed.md.
set -euo pipefail
TOOLS="$(cd "$(dirname "$0")" && pwd)"
exec bash "${TOOLS}/slurm_srun.sh" "$1" "$2" "${TOOLS}/test.py" "$3" "$4" \
    "${@:5}"
