#!/usr/bin/env bash
# Shared by tools/slurm_train.sh and tools/slurm_test.sh:
#   bash tools/slurm_srun.sh PARTITION JOB_NAME SCRIPT [script args...]
# runs `python -u SCRIPT args --launcher=slurm` as GPUS srun tasks.
# Env: GPUS (8, total number of tasks = processes), GPUS_PER_NODE (8; 0 on
# CPU-only nodes: no --gres, gloo backend), TASKS_PER_NODE (GPUS_PER_NODE, or
# 1 when it is 0), CPUS_PER_TASK (5), SRUN_ARGS (""), PYTHON (python).
# Each task derives RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR from SLURM_PROCID,
# SLURM_NTASKS, SLURM_LOCALID and the first node of SLURM_NODELIST
# (MASTER_PORT: 29500 unless set). See docs/distributed.md.
set -euo pipefail
set -x
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
if [ "${GPUS_PER_NODE}" -gt 0 ]; then
    TASKS_PER_NODE=${TASKS_PER_NODE:-${GPUS_PER_NODE}}
    GRES=(--gres=gpu:"${GPUS_PER_NODE}")
else
    TASKS_PER_NODE=${TASKS_PER_NODE:-1}
    GRES=()
fi
TOOLS="$(cd "$(dirname "$0")" && pwd)"

# shellcheck disable=SC2086  # SRUN_ARGS holds several words
PYTHONPATH="${TOOLS}/..":${PYTHONPATH:-} \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    "${GRES[@]}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${TASKS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "${PYTHON}" -u "${SCRIPT}" "${@:4}" --launcher=slurm
