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
flags.DEFINE_enum(
    "mode",
    "train",
    ["train", "sample", "eval", "gan", "refine", "classifier", "conditional", "translate"],
    "train | sample | eval (FDRL); gan (train a base GAN) | refine (DGflow); classifier "
    "(train p(y|x)) | conditional (class-conditional samples) | translate (source -> target).",
)
flags.DEFINE_enum(
    "distributed",
    "auto",
    ["auto", "on", "off"],
    "Join a multi-process run with jax.distributed: auto = when SLURM, Open MPI, "
    "a multi-worker TPU slice or --coordinator_address is detected.",
)
flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0 (multi-process runs outside SLURM/TPU, which are detected).",
)
flags.DEFINE_integer("num_processes", None, "Number of processes (with --coordinator_address).")
flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator_address).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from fdrl_jax import dgflow, evaluation, gan, parallel, sampling, train

    parallel.initialize(
        FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
    )

    logging.set_verbosity(logging.INFO)
    # Orbax logs every checkpoint phase at INFO; keep the progress lines readable.
    logging.get_absl_handler().addFilter(lambda r: "orbax" not in r.pathname)
    workdir = os.path.abspath(FLAGS.workdir)
    modes = {
        "train": train.train,
        "sample": sampling.run_sample,
        "eval": evaluation.run_eval,
        "gan": gan.run_gan,
        "refine": dgflow.run_refine,
    }
    from fdrl_jax import classifier, conditional, translate

    modes["classifier"] = classifier.run_classifier
    modes["conditional"] = conditional.run_conditional_sample
    modes["translate"] = translate.run_translate
    modes[FLAGS.mode](FLAGS.config, workdir)


if __name__ == "__main__":
    app.run(main)
