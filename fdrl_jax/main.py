"""Entry point: `python -m fdrl_jax.main --config=configs/x.py --workdir=DIR [--mode=...]`.

Only flags and dispatch live here; the work is in importable library functions.
"""

from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py[:arg]).", lock_config=True
)
flags.DEFINE_string(
    "workdir",
    None,
    "Run directory: config.json, checkpoints/, metrics.jsonl, "
    "samples/, eval/. Reusing it resumes from the latest checkpoint.",
)
flags.DEFINE_enum("mode", "train", ["train", "sample", "eval"], "What to do.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from fdrl_jax import sampling, train
    from fdrl_jax.evaluation import toy_metrics

    logging.set_verbosity(logging.INFO)
    # Orbax logs every checkpoint phase at INFO; keep the progress lines readable.
    logging.get_absl_handler().addFilter(lambda r: "orbax" not in r.pathname)
    workdir = os.path.abspath(FLAGS.workdir)
    modes = {"train": train.train, "sample": sampling.run_sample, "eval": toy_metrics.run_eval}
    modes[FLAGS.mode](FLAGS.config, workdir)


if __name__ == "__main__":
    app.run(main)
