"""The command line, end to end, as a user runs it (subprocesses, smoke configs)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # the package in subprocesses / end to end

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, check=True):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "fdrl_jax.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def test_train_eval_sample_on_the_cli(tmp_path):
    wd = str(tmp_path / "run")
    proc = _run(
        "--config=configs/gaussians8.py:lr-js,smoke", f"--workdir={wd}", "--config.flow.eta=0.5"
    )
    assert "steps/s" in proc.stderr and "left" in proc.stderr  # progress is visible
    cfg = json.load(open(os.path.join(wd, "config.json")))
    assert (cfg["loss"], cfg["divergence"], cfg["flow"]["eta"]) == ("lr", "js", 0.5)
    _run("--config=configs/gaussians8.py:lr-js,smoke", f"--workdir={wd}", "--mode=eval")
    metrics = json.load(open(os.path.join(wd, "eval", "toy_metrics.json")))
    for key in ("model_vs_data", "prior_vs_data", "data_vs_data"):
        assert set(metrics[key]) == {"energy_distance", "sliced_w2", "c2st", "precision", "recall"}
        assert 0 <= metrics[key]["c2st"] <= 1
    # The two-sample test tells the prior from the 8 Gaussians (0.81 measured on the smoke's
    # 256 points) and not a second data draw (0.51).
    assert metrics["prior_vs_data"]["c2st"] > 0.7 and metrics["data_vs_data"]["c2st"] < 0.62
    assert os.path.exists(os.path.join(wd, "eval", "toy_eval.png"))
    _run("--config=configs/gaussians8.py:lr-js,smoke", f"--workdir={wd}", "--mode=sample")
    assert os.path.exists(os.path.join(wd, "eval", "samples.npz"))


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--config=configs/swissroll.py:smoke", "--config.loss=lsif", "--config.divergence=kl"],
            "Invalid pairing",
        ),
        (["--config=configs/swissroll.py:smoke", "--config.divergence=tv"], "Unknown divergence"),
        (["--config=configs/swissroll.py:lr-xx"], "Unknown config argument 'lr-xx'"),
    ],
)
def test_bad_command_lines_fail_with_a_clear_message(tmp_path, args, message):
    proc = _run(*args, f"--workdir={tmp_path}", check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_sample_without_a_checkpoint_says_train_first(tmp_path):
    proc = _run(
        "--config=configs/swissroll.py:smoke", f"--workdir={tmp_path}", "--mode=sample", check=False
    )
    assert proc.returncode != 0 and "train first" in proc.stderr


def test_user_errors_print_the_message_alone_and_exit_2_unless_debugging(tmp_path):
    bad = ["--config=configs/swissroll.py:smoke", "--config.divergence=tv", f"--workdir={tmp_path}"]
    proc = _run(*bad, check=False)
    assert proc.returncode == 2
    assert "Unknown divergence 'tv'" in proc.stderr and "Traceback" not in proc.stderr
    for args in (["--config=configs/swissroll.py:lr-xx"], ["--config=configs/nope.py"]):
        proc = _run(*args, f"--workdir={tmp_path}", check=False)  # errors while loading --config
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("Error: ")
    proc = _run(*bad, "--debug", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
