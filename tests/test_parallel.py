"""Data parallelism on simulated CPU devices: 8 devices compute the 1-device step, checkpoints
move across device counts, and 2 processes joined by jax.distributed match one process."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from fdrl_jax import configlib, parallel, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "--config=configs/swissroll.py:smoke"


def _cli(workdir, *args, devices=8, check=True):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "fdrl_jax.main", CONFIG, f"--workdir={workdir}", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(*procs):
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]


def _config(num_steps):
    c = configlib.toy_config("swissroll", "smoke")
    c.train.num_steps = num_steps
    return c


def _restore(workdir, num_steps):
    """Restore (here: one device) what another device count saved."""
    return run.restore_for_inference(_config(num_steps), workdir)[1]


def _close(a, b, rtol=1e-5):
    """Every leaf within `rtol` relative (L2) of the reference: only the order of the batch
    reductions differs between device counts."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert np.linalg.norm(x - y) <= rtol * np.linalg.norm(y), np.linalg.norm(x - y)


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("one")
    return run.train(_config(20), str(wd))


@pytest.mark.slow
def test_eight_devices_equal_one_and_restore_on_one(tmp_path, one_device_run):
    assert jax.device_count() == 1
    wd = str(tmp_path / "eight")
    _wait(_cli(wd))
    eight = _restore(wd, 20)  # saved on 8 devices, restored on 1
    assert int(eight.step) == 20
    _close(eight.params, one_device_run.params)
    _close(eight.ema_params, one_device_run.ema_params)


@pytest.mark.slow
def test_save_on_eight_continue_on_one(tmp_path, one_device_run):
    wd = str(tmp_path / "moved")
    _wait(_cli(wd, "--config.train.num_steps=10"))
    resumed = run.train(_config(20), wd)  # this process has one device
    _close(resumed.params, one_device_run.params)


@pytest.mark.slow
def test_batch_not_divisible_by_devices_names_both_numbers(tmp_path):
    proc = _cli(str(tmp_path), "--config.train.batch_size=100")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "train.batch_size = 100" in err and "number of devices (8)" in err


@pytest.mark.slow
def test_two_processes_with_jax_distributed_match_one(tmp_path, one_device_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wd = str(tmp_path / "multi")
    procs = [
        _cli(
            wd,
            f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2",
            f"--process_id={i}",
            devices=4,
        )
        for i in range(2)
    ]
    _wait(*procs)
    multi = _restore(wd, 20)
    _close(multi.params, one_device_run.params)
    assert os.path.exists(os.path.join(wd, "metrics.jsonl"))


def test_global_batch_from_process_local_rows():
    mesh = parallel.make_mesh()
    x = parallel.global_batch(np.arange(8.0).reshape(4, 2), mesh)
    assert x.shape == (4, 2) and x.sharding == parallel.batch_sharded(mesh)
    np.testing.assert_array_equal(parallel.to_host(x), np.arange(8.0).reshape(4, 2))
