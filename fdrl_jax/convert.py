"""Entry point for checkpoints between the reference PyTorch implementation and a work
directory of ours (`run/conversion.py`), and for the weights of the paper's two external networks:

    python -m fdrl_jax.convert --from=reference CKPT.pt --config=configs/cifar10.py \
        --workdir=DIR [--prior=cifar10_ddp.pt]          # a new work directory holding CKPT.pt
    python -m fdrl_jax.convert --to=npz OUT.npz --config=... --workdir=DIR
    python -m fdrl_jax.convert --to=reference OUT.pt --config=... --workdir=DIR \
        [--prior=OUT_ddp.pt]                            # default: <dataset>_ddp.pt beside OUT.pt
    python -m fdrl_jax.convert --from=robustness cifar_l2_1_0.pt OUT.npz
        # the robustness library's CIFAR ResNet-50 -> classifier.name = robust_resnet50
    python -m fdrl_jax.convert --from=torchvision inception_v3_google-0cc3c7bd.pth OUT.npz
        # torchvision's Inception-v3 -> eval.feature_net = torchvision

`--from=reference` and `--to=reference` need torch (`pip install torch`); the last two read
their files without torch and take no --config or --workdir. As for `fdrl_jax.main`, a user
error prints its message alone and exits with status 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

from fdrl_jax.errors import ConfigError
from fdrl_jax.evaluation import torchvision_inception
from fdrl_jax.interop import robustness
from fdrl_jax.run import cli, conversion, files


def define_flags(
    flag_values: flags.FlagValues = flags.FLAGS, sys_argv: list[str] | None = None
) -> None:
    """The command's flags on `flag_values` (see `fdrl_jax.main.define_flags`)."""
    config_flags.DEFINE_config_file(
        "config",
        None,
        "The run's config file (configs/*.py[:arg]).",
        lock_config=True,
        flag_values=flag_values,
        sys_argv=sys_argv,
    )
    flags.DEFINE_string(
        "workdir",
        None,
        "The work directory to write (--from) or read (--to).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "from",
        None,
        ["reference", "robustness", "torchvision"],
        "Import a checkpoint of the reference code (into --workdir), or convert the robustness "
        "library's classifier or torchvision's Inception-v3 weights (IN OUT.npz).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "to",
        None,
        ["npz", "reference"],
        "Export the run's latest checkpoint.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "prior",
        None,
        "--from: the reference's prior file (<dataset>_ddp.pt) to import; --to=reference: where "
        "to write it.",
        flag_values=flag_values,
    )
    cli.define_debug_flag(flag_values)


FLAGS = flags.FLAGS  # defined by `define_flags()` when run as the command


def _parse_flags(argv: list[str]) -> list[str]:
    return cli.parse_flags(FLAGS, argv)


WEIGHTS = {  # --from: converts IN to OUT.npz, no config or work directory
    "robustness": robustness.import_checkpoint,
    "torchvision": torchvision_inception.convert_file,
}


def run(fv: flags.FlagValues, paths: list[str]) -> None:
    """What the command runs once its flags are parsed: `paths` are its positional arguments."""
    source, target = fv["from"].value, fv.to
    if (source is None) == (target is None):
        raise ConfigError(
            "Give one of --from=reference|robustness|torchvision (import) or "
            "--to=npz|reference (export)."
        )
    if source in WEIGHTS:
        if len(paths) != 2:
            raise ConfigError(f"--from={source} takes two files: the checkpoint and OUT.npz.")
        out = WEIGHTS[source](paths[0], paths[1])
        logging.info("Converted %s into %s", paths[0], out)
        return
    if len(paths) != 1:
        raise ConfigError("Give one file: the checkpoint to import, or the file to export to.")
    if fv.config is None or fv.workdir is None:
        raise ConfigError(
            f"--{'from' if source else 'to'}={source or target} needs --config and --workdir."
        )
    path = paths[0]
    workdir = files.resolve(fv.workdir)  # a local directory (absolute) or a bucket URI
    if source == "reference":
        conversion.import_reference(fv.config, workdir, path, fv.prior)
    elif target == "npz":
        conversion.export_npz(fv.config, workdir, path)
    else:
        conversion.export_reference(fv.config, workdir, path, fv.prior)


def main(argv) -> None:
    if len(argv) < 2:
        raise app.UsageError("Give the file to import (and OUT.npz), or the file to export to.")
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(lambda r: "orbax" not in r.pathname)
    with cli.user_errors_exit(FLAGS):
        run(FLAGS, argv[1:])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=_parse_flags)
