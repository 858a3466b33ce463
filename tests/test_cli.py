"""Mistakes on the command line (`run/cli.py`), parsed in-process as `python -m fdrl_jax.main`
and `python -m fdrl_jax.convert` parse them: each is a user error (one line, exit status 2 on
the command line, see test_main.py) whose message says what to change, never a traceback."""

import pytest
from absl import flags
from helpers import configs

from fdrl_jax import convert, main
from fdrl_jax.errors import ConfigError, FlagError, MissingFileError, UserError
from fdrl_jax.run import cli

CONFIG = f"--config={configs('swissroll.py')}"


def _parse(module, *args):
    argv = ["prog", *args]
    fv = flags.FlagValues()
    module.define_flags(fv, sys_argv=argv)
    required = getattr(module, "REQUIRED", {})
    return fv, cli.parse_command(fv, argv, required)


@pytest.mark.parametrize(
    "args,error,message",
    [
        ([CONFIG, "--workdir=w", "--config.flow.etaa=1"], FlagError, 'Did you mean "eta"'),
        ([CONFIG, "--workdir=w", "--config.floww.eta=1"], FlagError, "--config.floww.eta"),
        ([CONFIG, "--workdir=w", "--mode=nonsense"], FlagError, "train|sample|eval"),
        (["--workdir=w"], FlagError, "--config is required"),
        ([CONFIG], FlagError, "--workdir is required"),
        ([CONFIG, "--workdir=w", "--config.flow.eta=abc"], FlagError, "--config.flow.eta=abc"),
        ([CONFIG, "--workdir=w", "--no_such_flag=1"], FlagError, "no_such_flag"),
        (["--config=configs/nope.py", "--workdir=w"], MissingFileError, "does not exist"),
        ([CONFIG + ":lr-xx", "--workdir=w"], ConfigError, "Unknown config argument 'lr-xx'"),
    ],
)
def test_command_line_mistakes_are_user_errors_with_one_line_messages(args, error, message):
    with pytest.raises(error) as info:
        _parse(main, *args)
    assert isinstance(info.value, UserError)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_valid_command_line_parses_with_its_overrides():
    fv, rest = _parse(main, CONFIG + ":lr-kl", "--workdir=w", "--config.flow.eta=0.5")
    assert rest == ["prog"] and fv.mode == "train"
    assert (fv.config.loss, fv.config.flow.eta) == ("lr", 0.5)


def test_a_bug_in_a_config_file_keeps_its_own_exception(tmp_path):
    (tmp_path / "bug.py").write_text("def get_config(arg=None):\n    return None + 1\n")
    with pytest.raises(flags.Error) as info:  # absl's wrapper, shown with its traceback
        _parse(main, f"--config={tmp_path / 'bug.py'}", "--workdir=w")
    assert "TypeError" in str(info.value) and not isinstance(info.value, UserError)


def test_convert_without_config_says_what_it_needs():
    fv, rest = _parse(convert, "--from=reference", "model.pt", "--workdir=w")
    with pytest.raises(ConfigError, match="needs --config and --workdir"):
        convert.run(fv, rest[1:])
    with pytest.raises(FlagError, match="reference|robustness|torchvision"):
        _parse(convert, "--from=nonsense", "model.pt")
