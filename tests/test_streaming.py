"""The streaming input path (`data/streaming.py`): host-resident images whose batches are the
device path's, by step, prefetched, restartable anywhere, sharded over 8 devices and gathered
per process, chosen by data.pipeline. (That such batches train the device path's model is in
test_trainer.py.)"""

import json
import socket
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ROOT, env

from fdrl_jax import configlib, parallel
from fdrl_jax.data import build_data, images, streaming


def _sets(n=50, size=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = (np.arange(n) % 5).astype(np.int32)
    host = streaming.HostImageData(images=x, labels=y, num_classes=5)
    device = images.ImageData(images=jnp.asarray(x), labels=jnp.asarray(y), num_classes=5)
    return host, device


def test_streamed_batches_are_the_device_paths_batches():
    host, device = _sets()
    data_key = jax.random.PRNGKey(7)
    stream = streaming.BatchStream(host, data_key, batch_size=12, prefetch=3, chunk=4)
    with stream:
        for step in range(10):  # crosses index chunks
            key = jax.random.fold_in(data_key, step)
            got = stream.get(step).sample(key, 12)
            np.testing.assert_array_equal(np.asarray(got), np.asarray(device.sample(key, 12)))
    # Drawn eagerly on the host, too (what eval and prior fits call).
    x, y = host.sample_with_labels(jax.random.PRNGKey(3), 9)
    dx, dy = device.sample_with_labels(jax.random.PRNGKey(3), 9)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(dx))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(dy))
    np.testing.assert_allclose(
        np.concatenate(list(host.clean_batches(16))),
        np.concatenate(list(device.clean_batches(16))),
    )


def test_stream_restarts_exactly_at_any_step():
    host, _ = _sets()
    key = jax.random.PRNGKey(0)
    with streaming.BatchStream(host, key, batch_size=8, chunk=3) as a:
        run = [np.asarray(a.get(s).images) for s in range(7)]
        again = np.asarray(a.get(2).images)  # a rollback
        after = np.asarray(a.get(3).images)
    np.testing.assert_array_equal(again, run[2])
    np.testing.assert_array_equal(after, run[3])
    with streaming.BatchStream(host, key, batch_size=8, chunk=3) as b:  # a resumed process
        np.testing.assert_array_equal(np.asarray(b.get(5).images), run[5])
    # Rows are the images the step's indices name.
    idx = streaming.BatchStream(host, key, batch_size=8).indices(4, 1)[0]
    np.testing.assert_array_equal(run[4], host.images[idx])
    assert not any(np.array_equal(run[0], r) for r in run[1:])


def test_a_failing_read_is_raised_by_get():
    class Unreadable:
        shape = (10, 4, 4, 3)

        def __getitem__(self, idx):
            raise OSError("disk gone")

    data = streaming.HostImageData(images=Unreadable(), labels=np.zeros(10, np.int32))
    with (
        streaming.BatchStream(data, jax.random.PRNGKey(0), batch_size=4) as s,
        pytest.raises(OSError, match="disk gone"),
    ):
        s.get(0)


def test_auto_pipeline_streams_sets_above_the_fraction_of_device_memory(tmp_path):
    gpu = types.SimpleNamespace(memory_stats=lambda: {"bytes_limit": 1000})
    cfg = {"pipeline": "auto", "device_memory_fraction": 0.25}
    assert streaming.choose_pipeline(cfg, 251, gpu) == "stream"
    assert streaming.choose_pipeline(cfg, 250, gpu) == "device"
    cpu = types.SimpleNamespace(memory_stats=lambda: None)  # CPU reports nothing: fixed budget
    assert streaming.choose_pipeline(cfg, streaming.FALLBACK_DEVICE_BYTES // 4, cpu) == "device"
    assert streaming.choose_pipeline(cfg, streaming.FALLBACK_DEVICE_BYTES // 2, cpu) == "stream"
    assert streaming.choose_pipeline({"pipeline": "stream"}, 1, gpu) == "stream"
    assert streaming.choose_pipeline({"pipeline": "device"}, 10**12, gpu) == "device"

    # Through the loader: a memory-mapped .npy, streamed when the budget is tiny.
    x = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    c = configlib.default_config().data
    c.update(name="npz", path=str(tmp_path / "x.npy"), device_memory_fraction=1e-9)
    data = build_data(c, allow_stream=True)
    assert streaming.is_streamed(data) and isinstance(data.images, np.memmap)
    np.testing.assert_array_equal(data.images, x)
    assert not streaming.is_streamed(build_data(c))  # other modes keep it on the device
    c.device_memory_fraction = 0.25
    assert not streaming.is_streamed(build_data(c, allow_stream=True))
    with pytest.raises(ValueError, match="data.pipeline"):
        full = configlib.default_config()
        full.data.pipeline = "disk"
        configlib.validate(full)


# Each of 2 processes (2 CPU devices each) streams batches of 8 over the 4-device mesh: it must
# read only the 4 rows its own devices hold, and the global batch (and its augmentation inside
# jit) must be the device path's. Prints the rows it read for step 0.
TWO_PROCESS_SCRIPT = """
import json, sys, threading
import jax, jax.numpy as jnp, numpy as np
from fdrl_jax import parallel
from fdrl_jax.data import images, streaming

parallel.initialize("on", sys.argv[1], 2, int(sys.argv[2]))
x = np.random.default_rng(0).integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)


class Rows:  # the host array, recording the rows this process's main thread reads
    shape, read = x.shape, []

    def __getitem__(self, i):
        if threading.current_thread() is threading.main_thread():  # not the prefetcher
            self.read.extend(np.atleast_1d(i).tolist())
        return x[i]


rows, key, mesh = Rows(), jax.random.PRNGKey(1), parallel.make_mesh()
host = streaming.HostImageData(images=rows, labels=np.zeros(40, np.int32))
device = images.ImageData(images=jnp.asarray(x), labels=jnp.zeros(40, jnp.int32))
augment = jax.jit(lambda b, k: b.sample(k, 8), out_shardings=parallel.replicated(mesh))
first = None
with streaming.BatchStream(host, key, 8, parallel.batch_sharded(mesh), chunk=2) as s:
    for step in (0, 1, 2, 5):  # 5: a restart
        idx = s.indices(step, 1)[0]
        rows.read.clear()
        batch = s.make_batch(idx)
        mine = [int(i) for sh in batch.images.addressable_shards for i in idx[sh.index[0]]]
        assert sorted(rows.read) == sorted(mine) and len(mine) == 4, (rows.read, mine)
        first = first or mine
        assert np.array_equal(parallel.to_host(batch.images), x[idx])
        k = jax.random.fold_in(key, step)
        got = parallel.to_host(augment(s.get(step), k))
        want = np.asarray(device.sample(k, 8))
        assert np.abs(got - want).max() < 1e-5, (step, np.abs(got - want).max())
print(json.dumps({"step0_rows": first, "step0_batch": s.indices(0, 1)[0].tolist()}))
"""


@pytest.mark.slow
def test_two_processes_read_only_their_devices_rows_of_the_global_batch():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCESS_SCRIPT, f"127.0.0.1:{port}", str(i)],
            cwd=ROOT,
            env=env(devices=2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    # Together the two processes read the step's batch once: each its own half.
    assert sorted(outs[0]["step0_rows"] + outs[1]["step0_rows"]) == sorted(outs[0]["step0_batch"])
    assert outs[0]["step0_batch"] == outs[1]["step0_batch"]


def test_sharded_batches_hold_the_rows_of_each_device():
    host, _ = _sets(n=40)
    mesh = parallel.make_mesh(jax.devices())
    stream = streaming.BatchStream(host, jax.random.PRNGKey(1), 8, parallel.batch_sharded(mesh))
    with stream:
        batch = stream.get(0)
    assert batch.images.sharding == parallel.batch_sharded(mesh)
    np.testing.assert_array_equal(
        parallel.to_host(batch.images), host.images[stream.indices(0, 1)[0]]
    )
