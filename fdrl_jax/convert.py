"""Entry point for checkpoints between the reference PyTorch implementation and a work
directory of ours (`run/conversion.py`):

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

from absl import app, flags, logging
from ml_collections import config_flags

from fdrl_jax.errors import ConfigError
from fdrl_jax.run import cli, conversion, files

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


def _parse_flags(argv: list[str]) -> list[str]:
    return cli.parse_flags(FLAGS, argv)


def _run(path: str) -> None:
    source, target = FLAGS["from"].value, FLAGS.to
    if (source is None) == (target is None):
        raise ConfigError("Give one of --from=reference (import) or --to=npz|reference (export).")
    workdir = files.resolve(FLAGS.workdir)  # a local directory (absolute) or a bucket URI
    if source == "reference":
        conversion.import_reference(FLAGS.config, workdir, path, FLAGS.prior)
    elif target == "npz":
        conversion.export_npz(FLAGS.config, workdir, path)
    else:
        conversion.export_reference(FLAGS.config, workdir, path, FLAGS.prior)


def main(argv) -> None:
    if len(argv) != 2:
        raise app.UsageError("Give one file: the checkpoint to import, or the file to export to.")
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(lambda r: "orbax" not in r.pathname)
    with cli.user_errors_exit(FLAGS):
        _run(argv[1])


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
