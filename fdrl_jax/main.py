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

# What each required flag takes (a missing one is a user error saying so).
REQUIRED = {
    "config": "the experiment's config file, e.g. --config=configs/swissroll.py",
    "workdir": "the run directory, e.g. --workdir=runs/swissroll",
}


def define_flags(
    flag_values: flags.FlagValues = flags.FLAGS, sys_argv: list[str] | None = None
) -> None:
    """The command's flags, defined on `flag_values`: a fresh `flags.FlagValues()` with
    `sys_argv` (the command line its `--config.*` overrides are read from, default
    `sys.argv`) parses a command line in-process, as the README test does."""
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Experiment config file (configs/*.py[:arg]).",
        flag_values=flag_values,
        lock_config=True,
        sys_argv=sys_argv,
    )
    flags.DEFINE_string(
        "workdir",
        None,
        "Run directory, local or a bucket (gs://bucket/path): config.json, checkpoints/, "
        "metrics.jsonl, samples/, eval/. Reusing it resumes from the latest checkpoint.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "mode",
        "train",
        list(modes.MODES),
        "train | sample | eval (FDRL); gan (train a base GAN) | refine (DGflow); classifier "
        "(train p(y|x)) | conditional (class-conditional samples) | translate (source -> target).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "distributed",
        "auto",
        ["auto", "on", "off"],
        "Join a multi-process run with jax.distributed: auto = when SLURM, Open MPI, "
        "a multi-worker TPU slice or --coordinator_address is detected.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "coordinator_address",
        None,
        "host:port of process 0 (multi-process runs outside SLURM/TPU, which are detected).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_processes",
        None,
        "Number of processes (with --coordinator_address).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "process_id",
        None,
        "This process's index (with --coordinator_address).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "peer_timeout",
        30.0,
        "Multi-process runs: seconds without a heartbeat after which a process counts as lost "
        "and the others exit (status 75) instead of waiting in a collective; 0 = off.",
        flag_values=flag_values,
    )
    cli.define_debug_flag(flag_values)


FLAGS = flags.FLAGS  # defined by `define_flags()` when run as the command


def _report(error: BaseException) -> int:
    """How a process of a multi-process run that stops with `error` reports it (the peer
    watchdog then ends the process with the status returned): as `main` does on one."""
    if isinstance(error, UserError) and not cli.debugging(FLAGS):
        print(f"Error: {error}", file=sys.stderr)
        return cli.USAGE_ERROR
    traceback.print_exception(error)
    return 1


def _parse_flags(argv: list[str]) -> list[str]:
    return cli.parse_flags(FLAGS, argv, REQUIRED)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    # Orbax logs every checkpoint phase at INFO; keep the progress lines readable.
    logging.get_absl_handler().addFilter(lambda r: "orbax" not in r.pathname)
    with cli.user_errors_exit(FLAGS):
        run(FLAGS)


def run(flag_values: flags.FlagValues) -> None:
    """What the command runs once its flags are parsed (`cli.parse_command`)."""
    fv = flag_values
    parallel.initialize(fv.distributed, fv.coordinator_address, fv.num_processes, fv.process_id)
    # A local directory (made absolute) or a bucket URI such as gs://bucket/runs/x.
    workdir = files.resolve(fv.workdir)
    # Before any collective: processes with different settings would hang or corrupt the run.
    multihost.check_same_config(fv.config, workdir=workdir, mode=fv.mode)
    with multihost.watch_peers(fv.peer_timeout, report=_report):
        modes.MODES[fv.mode](fv.config, workdir)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=_parse_flags)
