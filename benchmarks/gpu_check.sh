#!/usr/bin/env bash
# One command for the hardware check of the image configs, sized for one call of at most
# 9 minutes on one H100 / H200 (compilation and data preparation included) with everything
# it reads carried in at most 64 MiB (`benchmarks/gpu_carry.py` packs it; how it was sized:
# benchmarks/RESULTS.md, "The GPU check's budget"):
#   1. speed of every image config at batch 64, K = 100, float32, then bfloat16 while the
#      time lasts: ms per iteration against the lower bound from its FLOPs and bytes,
#      sampling throughput, compile times (benchmarks/speed.py; SPEED_S seconds);
#   2. the CIFAR-10 learning curve: configs/cifar10.py with spectral norm off on the carried
#      training images, up to 800 steps or TRAIN_S seconds (SIGTERM: it saves and stops);
#   3. FID of 2,000 samples of that model against the statistics of the carried training
#      images (TF-FID Inception, float16 weights), at flow lengths 0 (the data-dependent
#      prior's own draws) and 10-130 (how the FID moves along the whole flow);
# then a report (OUTDIR/report.md) with every figure. Everything is written under OUTDIR.
#
#   python benchmarks/gpu_carry.py                 # here, once: writes .gpu_carry/ (57 MiB)
#   bash benchmarks/gpu_check.sh OUTDIR            # there (carry .gpu_carry)
#   bash benchmarks/gpu_check.sh OUTDIR --smoke    # seconds on a CPU (CI): synthetic data, a
#                                                  # random feature net, tiny networks
#   STEPS=5000 TRAIN_S=0 bash benchmarks/gpu_check.sh OUTDIR --resume   # train the same run
#                                                  # further (no time limit), then FID of
#                                                  # 10,000 samples
# Inputs (real runs): .gpu_carry/ (or $GPU_CARRY): cifar10-train.npz, inception-fp16.npz, and
# wheels/ for packages the machine lacks (installed into a temporary folder, never fetched).
set -euo pipefail
OUT=${1:?usage: gpu_check.sh OUTDIR [--smoke|--resume]}
MODE=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
CARRY=${GPU_CARRY:-.gpu_carry}
RUN="$OUT/cifar10_nosn"
# Time budget (benchmarks/RESULTS.md, "The GPU check's budget"): at most
# SPEED_S + 60 + max(60, TOTAL_S - EVAL_S - elapsed) + 60 (SIGTERM grace) + the FID step.
TOTAL_S=${TOTAL_S:-500}   # the check's plan, compilation and data preparation included
SPEED_S=${SPEED_S:-120}   # no new speed row is started after this many seconds (a row in
                          # flight is stopped 60 s later; the rows done are kept)
TRAIN_S=${TRAIN_S:-250}   # training stops (and saves) after this many seconds; 0: no limit
EVAL_S=${EVAL_S:-100}     # kept for the FID step: training gets at most TOTAL_S - EVAL_S - elapsed
if ! $PY -c "import ml_collections" 2>/dev/null; then
  [ -d "$CARRY/wheels" ] || { echo "ml_collections is missing and $CARRY/wheels is not there" >&2; exit 2; }
  $PY -m pip install -q --no-index --no-deps --target /tmp/fdrl-site "$CARRY"/wheels/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/fdrl-site"
fi
if [ "$MODE" = "--smoke" ]; then
  CFG="configs/cifar10.py:smoke"
  DATA=()
  TRAIN=(--config.train.num_steps=6 --config.train.log_every=2)
  EVAL=(--config.eval.num_samples=16 --config.eval.batch_size=8 --config.eval.fid_lengths="(0,2,3,4)")
  SPEED=(--smoke --configs=cifar10-nosn --precision=float32)
  TRAIN_S=0
else
  CFG="configs/cifar10.py"
  for f in cifar10-train.npz inception-fp16.npz; do
    [ -f "$CARRY/$f" ] || { echo "$CARRY/$f is missing: python benchmarks/gpu_carry.py" >&2; exit 2; }
  done
  DATA=(--config.data.name=npz --config.data.path="$CARRY/cifar10-train.npz")
  TRAIN=(--config.train.num_steps="${STEPS:-800}" --config.train.log_every=100
         --config.train.checkpoint_every=400 --config.train.sample_every=400)
  N=2000
  [ "$MODE" = "--resume" ] && N=10000
  EVAL=(--config.eval.num_samples=$N --config.eval.batch_size=500 --config.eval.figures=False
        --config.eval.inception_weights="$CARRY/inception-fp16.npz"
        --config.eval.fid_lengths="(0,10,20,40,70,100,110,120,130)")
  SPEED=(--precision=float32,bfloat16 --repeats=3 --sample_batch=500 --budget_s="$SPEED_S")
  LIMITS=benchmarks/physical_limits.json  # FLOPs and bytes counted ahead (on a CPU)
  [ -f "$LIMITS" ] && SPEED+=(--no_cost --limits="$LIMITS")
fi
COMMON=(--config="$CFG" --workdir="$RUN" --config.model.spectral_norm=False "${DATA[@]}" "${TRAIN[@]}")

if [ "$MODE" != "--resume" ]; then
  echo "== 1. speed"
  SLIMIT=()
  [ "$MODE" != "--smoke" ] && SLIMIT=(timeout -s TERM -k 10 "$((SPEED_S + 60))")
  set +e
  "${SLIMIT[@]}" $PY benchmarks/speed.py "${SPEED[@]}" --out="$OUT/speed.json" 2>&1 \
    | tee "$OUT/speed.log"
  RC=${PIPESTATUS[0]}
  set -e
  [ "$RC" = 124 ] && echo "speed: stopped at its time limit; the rows done are in speed.json"
  [ "$RC" = 0 ] || [ "$RC" = 124 ] || exit "$RC"
fi
LIMIT=()
if [ "$TRAIN_S" != 0 ]; then
  LEFT=$((TOTAL_S - EVAL_S - SECONDS))
  [ "$LEFT" -lt "$TRAIN_S" ] && TRAIN_S=$((LEFT > 60 ? LEFT : 60))
  LIMIT=(timeout --preserve-status -s TERM -k 60 "$TRAIN_S")
fi
echo "== 2. training (resumes $RUN if it exists; ${TRAIN_S} s at most, 0: no limit)"
/usr/bin/env time -p "${LIMIT[@]}" $PY -m fdrl_jax.main "${COMMON[@]}" 2>&1 | tee "$OUT/train.log"
echo "== 3. FID"
/usr/bin/env time -p $PY -m fdrl_jax.main "${COMMON[@]}" --mode=eval "${EVAL[@]}" 2>&1 \
  | tee "$OUT/eval.log"
$PY benchmarks/gpu_report.py "$OUT" | tee "$OUT/report.md"
