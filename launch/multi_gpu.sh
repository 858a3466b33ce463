#!/usr/bin/env bash
# Train on all GPUs of one node: a single process sees every local GPU, and the mesh shards
# each global batch over them (train.batch_size must be divisible by the GPU count).
#
#   bash launch/multi_gpu.sh configs/swissroll.py runs/swissroll [--config.train.batch_size=1024]
set -euo pipefail
CONFIG=${1:?usage: multi_gpu.sh CONFIG WORKDIR [overrides...]}
WORKDIR=${2:?usage: multi_gpu.sh CONFIG WORKDIR [overrides...]}
shift 2
cd "$(dirname "$0")/.."
# Let XLA take most of each GPU's memory up front (the flow is memory-bound at large batch).
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader || true
exec python -m fdrl_jax.main --config="$CONFIG" --workdir="$WORKDIR" --distributed=off "$@"
