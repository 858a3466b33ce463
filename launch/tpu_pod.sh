#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: create the VM, copy this checkout to every worker and install
# it, then run the same command on every worker (jax.distributed detects the slice; process 0
# writes logs and figures, every worker writes its shards of each checkpoint).
#
#   TPU_NAME=fdrl-v4-32 ZONE=us-central2-b ACCELERATOR=v4-32 \
#   CONFIG=configs/swissroll.py WORKDIR=gs://my-bucket/runs/swissroll bash launch/tpu_pod.sh
#
# WORKDIR is a bucket path (gs://...) that every worker reads and writes directly: orbax
# writes checkpoints there, and every other run file goes through etils.epath (no gcsfuse
# mount). The VM's service account needs read/write access to the bucket. Running the same
# command again resumes from the latest checkpoint in WORKDIR, e.g. after a preemption: on
# SIGTERM every worker saves the same step and exits 0.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${CONFIG:?set CONFIG}" "${WORKDIR:?set WORKDIR}"
case "$WORKDIR" in
  gs://*) ;;
  *) echo "WORKDIR must be a bucket path (gs://bucket/path) that every worker can reach" >&2
     exit 2 ;;
esac
ACCELERATOR=${ACCELERATOR:-v4-32}
VERSION=${VERSION:-tpu-ubuntu2204-base}
EXTRA_ARGS=${EXTRA_ARGS:-}

if ! gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone "$ZONE" >/dev/null 2>&1; then
  gcloud compute tpus tpu-vm create "$TPU_NAME" --zone "$ZONE" \
    --accelerator-type "$ACCELERATOR" --version "$VERSION"
fi

run_all() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "$1"
}

# Ship this checkout (its committed state) to every worker and install it there, with gcsfs
# so that etils.epath reaches gs:// without TensorFlow.
cd "$(dirname "$0")/.."
git archive --format=tar.gz -o /tmp/fdrl-jax.tar.gz HEAD
gcloud compute tpus tpu-vm scp /tmp/fdrl-jax.tar.gz "$TPU_NAME":~/ --zone "$ZONE" --worker=all
run_all "set -e; mkdir -p fdrl-jax && tar -xzf fdrl-jax.tar.gz -C fdrl-jax && cd fdrl-jax \
  && python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[tpu,gcs]'"
run_all "cd fdrl-jax && . .venv/bin/activate && python -m fdrl_jax.main --config=$CONFIG \
  --workdir=$WORKDIR --distributed=on $EXTRA_ARGS"
