"""The training loop (`modes/train_mode.py`): the run directory it writes, a resumed run that
equals an uninterrupted one (also on another device count), divergence (stop, or roll back at
a lower rate), corrupted checkpoints skipped, and preemption and crash safety of the command
(SIGTERM saves and exits 0; SIGKILL at random moments never loses more than a checkpoint
interval)."""

import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from helpers import ROOT, assert_close, configs, devices, env, leaves_equal

from fdrl_jax import configlib
from fdrl_jax.errors import DivergenceError
from fdrl_jax.modes.train_mode import train_mode
from fdrl_jax.run import checkpoints
from fdrl_jax.run.checkpoints import restore_for_inference


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """(config, workdir, final state) of an uninterrupted 20-step smoke run on 8 devices
    (checkpoints at 10 and 20)."""
    config = configlib.smoke(configlib.default_config())
    wd = str(tmp_path_factory.mktemp("full"))
    with devices(8):
        return config, wd, train_mode(config, wd)


def _copy(full_run, tmp_path):
    """(config, workdir, final state): a copy of the full run to continue (on 8 devices)."""
    config, wd, state = full_run
    copy = str(tmp_path / "copy")
    shutil.copytree(wd, copy)
    return config.copy_and_resolve_references(), copy, state


def test_the_run_directory(full_run):
    _, wd, state = full_run
    assert int(state.step) == 20
    assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["10", "20"]
    assert os.path.exists(os.path.join(wd, "config.json"))
    assert sorted(os.listdir(os.path.join(wd, "samples"))) == [
        "step_0000010.png",
        "step_0000020.png",
    ]
    rows = [json.loads(ln) for ln in open(os.path.join(wd, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    for key in ("loss", "lr", "out_p", "out_q", "grad_norm", "flow_dist", "steps_per_sec"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert os.path.exists(os.path.join(wd, "metrics.png"))


def test_a_resumed_run_equals_an_uninterrupted_one(full_run, tmp_path):
    """Stopped after step 9 (between checkpoint intervals) and resumed: bit for bit the
    uninterrupted run, with one run's log. The same checkpoint continued on one device
    instead of 8 gives the same model, to float rounding."""
    config, _, full = full_run
    config = config.copy_and_resolve_references()
    wd = str(tmp_path / "part")
    config.train.num_steps, config.train.checkpoint_every = 9, 7  # checkpoints at 7 and 9
    with devices(8):
        train_mode(config, wd)
        moved = str(tmp_path / "moved")
        shutil.copytree(wd, moved)
        config.train.num_steps = 20
        resumed = train_mode(config, wd)
    assert int(resumed.step) == 20 and leaves_equal(resumed, full)
    steps = [json.loads(ln)["step"] for ln in open(os.path.join(wd, "metrics.jsonl"))]
    assert steps == sorted(set(steps))  # one run's log
    on_one = train_mode(config, moved)  # the modes see one device here
    assert on_one.params["Dense_0"]["kernel"].sharding.device_set == {jax.devices()[0]}
    assert_close(on_one.params, full.params)
    assert_close(on_one.ema_params, full.ema_params)


def test_a_corrupted_checkpoint_is_skipped_for_the_newest_valid_one(
    full_run, tmp_path, all_devices
):
    config, wd, full = _copy(full_run, tmp_path)
    for path in glob.glob(os.path.join(wd, "checkpoints", "20", "**", "*"), recursive=True):
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            with open(path, "r+b") as f:
                f.truncate(max(os.path.getsize(path) // 3, 1))
    resumed = train_mode(config, wd)  # restores 10 (20 is moved aside), redoes 11..20
    assert leaves_equal(resumed, full)
    assert os.listdir(os.path.join(wd, "checkpoints_corrupt"))


def test_a_diverged_step_stops_training_and_keeps_the_last_checkpoint(
    full_run, tmp_path, all_devices
):
    config, wd, full = _copy(full_run, tmp_path)
    config.train.num_steps = 30
    config.flow.eta = 1e38  # the flow overflows: x_K = inf, loss = nan
    with pytest.raises(DivergenceError, match="diverged at step 21.*checkpoint"):
        train_mode(config, wd)
    ckpt = checkpoints.Checkpointer(os.path.join(wd, "checkpoints"))
    assert ckpt.latest_step() == 20
    restored = ckpt.restore_latest(full)
    ckpt.close()
    assert leaves_equal(restored, full)
    row = json.loads(open(os.path.join(wd, "metrics.jsonl")).read().splitlines()[-1])
    assert row["step"] == 21 and row["diverged"] is True


def test_rollback_lowers_the_learning_rate_then_gives_up(full_run, tmp_path, all_devices):
    config, wd, _ = _copy(full_run, tmp_path)
    config.train.num_steps = 30
    config.train.on_divergence = "rollback"
    config.train.max_rollbacks = 2
    config.train.max_abs_output = 1e-12  # every step now counts as exploding
    with pytest.raises(DivergenceError, match="diverged at step 21"):
        train_mode(config, wd)
    diverged = [
        json.loads(ln) for ln in open(os.path.join(wd, "metrics.jsonl")) if "diverged" in ln
    ]
    assert len(diverged) == 1  # the log was rewound at each rollback; the last one remains
    # Two rollbacks halved the rate twice: 5e-5 × 0.1² (decayed at steps 10 and 15) × 0.5².
    np.testing.assert_allclose(diverged[0]["lr"], 5e-5 * 0.01 * 0.25, rtol=1e-5)
    ckpt = checkpoints.Checkpointer(os.path.join(wd, "checkpoints"))
    assert ckpt.latest_step() == 20


def test_an_unwritable_workdir_fails_before_training(smoke_config, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match="Cannot write to --workdir"):
        train_mode(smoke_config, str(blocker / "run"))


# ------------------------------------------------------------------ the command, killed

ARGS = [
    "--config=configs/swissroll.py:smoke",
    "--config.train.log_every=10",
    "--config.train.checkpoint_every=40",
    "--config.train.sample_every=100000",
    "--config.train.max_checkpoints=2",
]


def _start(workdir, num_steps):
    return subprocess.Popen(
        [sys.executable, "-m", "fdrl_jax.main", *ARGS, f"--config.train.num_steps={num_steps}"]
        + [f"--workdir={workdir}"],
        cwd=ROOT,
        env=env(devices=1),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _config(num_steps):
    """What ARGS load, for `num_steps` steps."""
    c = configlib.load_config(configs("swissroll.py:smoke"))
    c.train.log_every, c.train.checkpoint_every = 10, 40
    c.train.sample_every, c.train.max_checkpoints = 100000, 2
    c.train.num_steps = num_steps
    return c


def _latest(workdir):
    return checkpoints.Checkpointer(os.path.join(workdir, "checkpoints")).latest_step()


def _logged_steps(workdir):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    steps = [0]
    for ln in open(path):
        try:  # the last line may be half-written
            steps.append(json.loads(ln)["step"])
        except (json.JSONDecodeError, KeyError):
            pass
    return steps[-1]


@pytest.mark.slow
def test_sigterm_saves_the_step_it_is_on_and_exits_zero(tmp_path):
    steps = 4000
    wd = str(tmp_path / "run")
    proc = _start(wd, steps)
    deadline = time.time() + 120
    while _logged_steps(wd) < 20 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert time.time() - t0 < 30
    assert "SIGTERM received" in err
    stopped = _latest(wd)
    assert 20 <= stopped < steps  # saved at the step it was on, not at an interval
    assert _logged_steps(wd) <= stopped
    # What it saved is the uninterrupted run's state at that step (the restart resumes it).
    reference = train_mode(_config(stopped), str(tmp_path / "reference"))
    assert leaves_equal(restore_for_inference(_config(stopped), wd)[1], reference)


@pytest.mark.slow
def test_random_sigkills_always_resume_from_a_valid_checkpoint(tmp_path):
    steps, wd = 200, str(tmp_path / "run")
    rng = random.Random(0)
    kills, during_write, lost = 0, 0, []
    while True:
        before = _latest(wd) or 0
        proc = _start(wd, steps)
        if kills < 2:
            # One kill strikes at a random point of training (a random number of steps past
            # the last checkpoint), one waits for a checkpoint write in progress.
            target_write = kills % 2 == 1
            target_step = before + rng.randint(1, 60)
            deadline = time.time() + 120
            while proc.poll() is None and time.time() < deadline:
                if target_write and glob.glob(os.path.join(wd, "checkpoints", "*tmp*")):
                    during_write += 1
                    break
                if not target_write and _logged_steps(wd) >= target_step:
                    break
                time.sleep(0.001)
            if proc.poll() is None:
                logged = _logged_steps(wd)
                proc.kill()
                proc.wait()
                kills += 1
                after = _latest(wd)
                assert (after or 0) >= before  # never goes back past a finished checkpoint
                lost.append(logged - (after or 0))
                continue
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        break
    assert kills == 2 and during_write >= 1
    assert max(lost) <= 40  # at most one checkpoint interval of logged work
    print(f"SIGKILLs: {kills} ({during_write} during a checkpoint write); lost steps: {lost}")
    reference = train_mode(_config(steps), str(tmp_path / "reference"))
    assert leaves_equal(restore_for_inference(_config(steps), wd)[1], reference)
