"""Preemption and crash safety: SIGTERM saves and exits 0; SIGKILL at random moments, including
during checkpoint writes, never loses more than a checkpoint interval nor changes the result;
corrupted checkpoints are skipped; divergence rolls back when configured."""

import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from fdrl_jax import configlib, run
from fdrl_jax.run import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = [
    "--config=configs/swissroll.py:smoke",
    "--config.train.log_every=10",
    "--config.train.checkpoint_every=40",
    "--config.train.sample_every=100000",
    "--config.train.max_checkpoints=2",
]


def _start(workdir, num_steps):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fdrl_jax.main",
            *ARGS,
            f"--config.train.num_steps={num_steps}",
            f"--workdir={workdir}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _config(num_steps):
    c = configlib.toy_config("swissroll", "smoke")  # what ARGS[0] loads
    for a in ARGS[1:]:
        path, value = a[len("--config.") :].split("=")
        node, leaf = path.split(".")
        c[node][leaf] = int(value)
    c.train.num_steps = num_steps
    return c


def _final_state(workdir, num_steps):
    return run.restore_for_inference(_config(num_steps), workdir)[1]


def _equal(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


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
def test_sigterm_saves_exits_zero_and_resumes_exactly(tmp_path):
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
    stopped = checkpoints.Checkpointer(os.path.join(wd, "checkpoints")).latest_step()
    assert 20 <= stopped < steps  # saved at the step it was on, not at an interval
    assert _logged_steps(wd) <= stopped
    proc = _start(wd, steps)  # resume to the end
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    reference = run.train(_config(steps), str(tmp_path / "reference"))
    assert _equal(_final_state(wd, steps), reference)


@pytest.mark.slow
def test_random_sigkills_always_resume_from_a_valid_checkpoint(tmp_path):
    steps, wd = 800, str(tmp_path / "run")
    rng = random.Random(0)
    kills, during_write, lost = 0, 0, []
    while True:
        before = checkpoints.Checkpointer(os.path.join(wd, "checkpoints")).latest_step() or 0
        proc = _start(wd, steps)
        if kills < 6:
            # Half the kills wait for a checkpoint write in progress; half strike at a random
            # point of training (a random number of steps past the last checkpoint).
            target_write = kills % 2 == 1
            target_step = before + rng.randint(1, 100)
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
                after = checkpoints.Checkpointer(os.path.join(wd, "checkpoints")).latest_step()
                assert (after or 0) >= before  # never goes back past a finished checkpoint
                lost.append(logged - (after or 0))
                continue
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        break
    assert kills == 6 and during_write >= 1
    assert max(lost) <= 40  # at most one checkpoint interval of logged work
    print(
        f"SIGKILLs: {kills} ({during_write} during a checkpoint write); logged steps lost "
        f"per kill: {lost}"
    )
    reference = run.train(_config(steps), str(tmp_path / "reference"))
    assert _equal(_final_state(wd, steps), reference)


def test_corrupted_checkpoint_is_skipped_for_the_newest_valid_one(smoke_config, tmp_path):
    wd = str(tmp_path / "run")
    full = run.train(smoke_config, wd)  # checkpoints at 10 and 20
    for path in glob.glob(os.path.join(wd, "checkpoints", "20", "**", "*"), recursive=True):
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            with open(path, "r+b") as f:
                f.truncate(max(os.path.getsize(path) // 3, 1))
    resumed = run.train(smoke_config, wd)  # restores 10 (20 is moved aside), redoes 11..20
    assert _equal(resumed, full)
    assert os.listdir(os.path.join(wd, "checkpoints_corrupt"))


def test_rollback_lowers_the_learning_rate_then_gives_up(smoke_config, tmp_path):
    wd = str(tmp_path / "run")
    smoke_config.train.num_steps = 10
    run.train(smoke_config, wd)
    smoke_config.train.num_steps = 20
    smoke_config.train.on_divergence = "rollback"
    smoke_config.train.max_rollbacks = 2
    smoke_config.train.max_abs_output = 1e-12  # every step now counts as exploding
    with pytest.raises(run.DivergenceError, match="diverged at step 11"):
        run.train(smoke_config, wd)
    diverged = [
        json.loads(ln) for ln in open(os.path.join(wd, "metrics.jsonl")) if "diverged" in ln
    ]
    assert len(diverged) == 1  # the log was rewound at each rollback; the last one remains
    # Two rollbacks halved the rate twice: 5e-5 × 0.1 (decayed at step 10) × 0.5².
    np.testing.assert_allclose(diverged[0]["lr"], 5e-5 * 0.1 * 0.25, rtol=1e-5)
    ckpt = checkpoints.Checkpointer(os.path.join(wd, "checkpoints"))
    assert ckpt.latest_step() == 10
