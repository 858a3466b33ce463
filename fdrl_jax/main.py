"""Entry point: `python -m fdrl_jax.main --config=configs/x.py --workdir=DIR [--mode=...]`.

Flags, the multi-process set-up and dispatch to `modes.MODES` only. An error in what the user
asked for (`errors.UserError`: an invalid config, a missing or malformed data file, an
unwritable workdir, no checkpoint, processes started with different settings, ...) prints its
message alone and exits with status 2; `--debug` (or FDRL_DEBUG=1) shows its traceback too.
Any other error keeps its traceback. On several processes, a process that is lost or stops
with an error makes the others exit with status 75 (`run/multihost.py`).
"""

from __future__ import annotations

import sys
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from fdrl_jax import modes, parallel
from fdrl_jax.errors import UserError
from fdrl_jax.run import cli, files, multihost

config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py[:arg]).", lock_config=True
)
flags.DEFINE_string(
    "workdir",
    None,
    "Run directory, local or a bucket (gs://bucket/path): config.json, checkpoints/, "
    "metrics.jsonl, samples/, eval/. Reusing it resumes from the latest checkpoint.",
)
flags.DEFINE_enum(
    "mode",
    "train",
    list(modes.MODES),
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
flags.DEFINE_float(
    "peer_timeout",
    30.0,
    "Multi-process runs: seconds without a heartbeat after which a process counts as lost "
    "and the others exit (status 75) instead of waiting in a collective; 0 = off.",
)
flags.DEFINE_bool("debug", False, "Show the traceback of user errors too (also FDRL_DEBUG=1).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def _report(error: BaseException) -> int:
    """How a process of a multi-process run that stops with `error` reports it (the peer
    watchdog then ends the process with the status returned): as `main` does on one."""
    if isinstance(error, UserError) and not cli.debugging(FLAGS):
        print(f"Error: {error}", file=sys.stderr)
        return cli.USAGE_ERROR
    traceback.print_exception(error)
    return 1


def _parse_flags(argv: list[str]) -> list[str]:
    return cli.parse_flags(FLAGS, argv)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    # Orbax logs every checkpoint phase at INFO; keep the progress lines readable.
    logging.get_absl_handler().addFilter(lambda r: "orbax" not in r.pathname)
    with cli.user_errors_exit(FLAGS):
        parallel.initialize(
            FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
        )
        # A local directory (made absolute) or a bucket URI such as gs://bucket/runs/x.
        workdir = files.resolve(FLAGS.workdir)
        # Before any collective: processes with different settings would hang or corrupt
        # the run.
        multihost.check_same_config(FLAGS.config, workdir=workdir, mode=FLAGS.mode)
        with multihost.watch_peers(FLAGS.peer_timeout, report=_report):
            modes.MODES[FLAGS.mode](FLAGS.config, workdir)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
