"""Entry point for checkpoints between the reference PyTorch implementation and a work
directory of ours (`run/convert.py`):

    python -m fdrl_jax.convert --from=reference CKPT.pt --config=configs/cifar10.py \
        --workdir=DIR [--prior=cifar10_ddp.pt]          # a new work directory holding CKPT.pt
    python -m fdrl_jax.convert --to=npz OUT.npz --config=... --workdir=DIR
    python -m fdrl_jax.convert --to=reference OUT.pt --config=... --workdir=DIR \
        [--prior=OUT_ddp.pt]                            # default: <dataset>_ddp.pt beside OUT.pt

`--from=reference` and `--to=reference` need torch (`pip install torch`). As for
`fdrl_jax.main`, a user error prints its message alone and exits with status 2 (`--debug`
shows the traceback).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from fdrl_jax.errors import ConfigError, MissingFileError, UserError
from fdrl_jax.run import convert
from fdrl_jax.run import workdir as workdir_lib

config_flags.DEFINE_config_file(
    "config", None, "The run's config file (configs/*.py[:arg]).", lock_config=True
)
flags.DEFINE_string("workdir", None, "The work directory to write (--from) or read (--to).")
flags.DEFINE_enum("from", None, ["reference"], "Import a checkpoint of the reference code.")
flags.DEFINE_enum("to", None, ["npz", "reference"], "Export the run's latest checkpoint.")
flags.DEFINE_string(
    "prior",
    None,
    "--from: the reference's prior file (<dataset>_ddp.pt) to import; --to=reference: where "
    "to write it.",
)
flags.DEFINE_bool("debug", False, "Show the traceback of user errors too (also FDRL_DEBUG=1).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS
USAGE_ERROR = 2


def _debugging(argv) -> bool:
    return "--debug" in argv or os.environ.get("FDRL_DEBUG", "") not in ("", "0")


def _exit_with(error: UserError) -> None:
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, with a user error raised while the config file loads reported alone."""
    try:
        rest = FLAGS(argv)
    except flags.Error as e:
        cause, user = e, None
        while cause is not None:
            user = cause if isinstance(cause, UserError) else user
            cause = cause.__cause__ or cause.__context__
        if user is None or _debugging(argv):
            raise
        _exit_with(user)
    path = config_flags.get_config_filename(FLAGS["config"]).split(":", 1)[0]
    if not os.path.isfile(path):
        _exit_with(MissingFileError(f"Config file {path!r} does not exist (--config)."))
    return rest


def _run(path: str) -> None:
    source, target = FLAGS["from"].value, FLAGS.to
    if (source is None) == (target is None):
        raise ConfigError("Give one of --from=reference (import) or --to=npz|reference (export).")
    workdir = workdir_lib.resolve(FLAGS.workdir)  # a local directory (absolute) or a bucket URI
    if source == "reference":
        convert.import_reference(FLAGS.config, workdir, path, FLAGS.prior)
    elif target == "npz":
        convert.export_npz(FLAGS.config, workdir, path)
    else:
        convert.export_reference(FLAGS.config, workdir, path, FLAGS.prior)


def main(argv) -> None:
    if len(argv) != 2:
        raise app.UsageError("Give one file: the checkpoint to import, or the file to export to.")
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(lambda r: "orbax" not in r.pathname)
    try:
        _run(argv[1])
    except UserError as e:
        if FLAGS.debug or _debugging([]):
            raise
        _exit_with(e)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
