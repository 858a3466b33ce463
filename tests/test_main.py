"""The command line (`fdrl_jax.main`) end to end, as a user runs it (subprocesses, smoke
configs): training with a pairing and overrides, then evaluation; a user error prints its
message alone and exits with status 2, unless --debug asks for the traceback."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, env

pytestmark = pytest.mark.slow  # the package in subprocesses


def _run(*args, tensorflow=False):
    return subprocess.run(
        [sys.executable, "-m", "fdrl_jax.main", *args],
        cwd=ROOT,
        env=env(devices=1, tensorflow=tensorflow),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_then_eval_on_the_command_line(tmp_path):
    wd = str(tmp_path / "run")
    config = "--config=configs/gaussians8.py:lr-js,smoke"
    proc = _run(config, f"--workdir={wd}", "--config.flow.eta=0.5", tensorflow=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "steps/s" in proc.stderr and "left" in proc.stderr  # progress is visible
    if all(importlib.util.find_spec(m) for m in ("tensorflow", "clu")):  # the extras
        assert os.listdir(os.path.join(wd, "tensorboard")), "no TensorBoard summaries"
    cfg = json.load(open(os.path.join(wd, "config.json")))
    assert (cfg["loss"], cfg["divergence"], cfg["flow"]["eta"]) == ("lr", "js", 0.5)
    proc = _run(config, f"--workdir={wd}", "--config.flow.eta=0.5", "--mode=eval")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.load(open(os.path.join(wd, "eval", "toy_metrics.json")))["step"] == 20


@pytest.mark.parametrize(
    "args,message",
    [
        (["--config=configs/swissroll.py:smoke", "--config.divergence=tv"], "Unknown divergence"),
        (["--config=configs/swissroll.py:lr-xx"], "Unknown config argument 'lr-xx'"),
        (["--config=configs/nope.py"], "does not exist"),
        (["--config=configs/swissroll.py:smoke", "--mode=sample"], "train first"),
        (["--config=configs/swissroll.py", "--config.flow.etaa=1"], 'Did you mean "eta"'),
        (["--config=configs/swissroll.py", "--mode=nonsense"], "--mode=nonsense"),
        ([], "--config is required"),
    ],
    ids=[
        "invalid-field",
        "unknown-argument",
        "no-config-file",
        "no-checkpoint",
        "unknown-field",
        "unknown-mode",
        "no-config",
    ],
)
def test_a_user_error_is_its_message_alone_and_exit_status_2(tmp_path, args, message):
    proc = _run(*args, f"--workdir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Error: " in proc.stderr and message in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    if "--mode=sample" not in args:  # refused while parsing: nothing else is printed
        assert proc.stderr.strip().count("\n") == 0, proc.stderr


def test_convert_without_config_is_one_line_and_exit_status_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fdrl_jax.convert",
            "--from=reference",
            "model.pt",
            f"--workdir={tmp_path}",
        ],
        cwd=ROOT,
        env=env(devices=1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip() == "Error: --from=reference needs --config and --workdir."


def test_debug_shows_the_traceback(tmp_path):
    proc = _run("--config=configs/swissroll.py:lr-xx", f"--workdir={tmp_path}", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
