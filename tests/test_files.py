"""The run directory's files (`run/files.py`): whole writes, the metrics log, the config a run
was trained with; and work directories in buckets: every run file goes through etils.epath, so
training, restoring, sampling and evaluating work with `--workdir=gs://...`. The bucket is
`tests/fake_gcs.py`: a local directory behind tensorstore's real gcs driver (orbax's array
data, over HTTP on localhost) and an fsspec filesystem for epath (everything else)."""

import json
import os
import subprocess
import sys
import time

import fake_gcs
import numpy as np
import pytest
from etils import epath
from helpers import ROOT, env, leaves_equal

import fdrl_jax.modes.train_mode
from fdrl_jax.modes.eval_mode import eval_mode
from fdrl_jax.modes.sample_mode import sample_mode
from fdrl_jax.modes.train_mode import train_mode
from fdrl_jax.run import checkpoints, files
from fdrl_jax.run.checkpoints import restore_for_inference


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """A fake `gs://bucket` for this module (tensorstore reads its server's address once per
    process, so one server serves every test here). Yields the bucket's local directory."""
    root = str(tmp_path_factory.mktemp("gcs"))
    os.makedirs(os.path.join(root, "bucket"))
    saved, writer = dict(os.environ), fdrl_jax.modes.train_mode.open_writer
    with fake_gcs.FakeGCSServer(root) as server:
        os.environ.update(fake_gcs.env(root, server.url))
        fake_gcs.register()  # also turns TensorBoard summaries off: put them back after
        yield os.path.join(root, "bucket")
    os.environ.clear()
    os.environ.update(saved)
    fdrl_jax.modes.train_mode.open_writer = writer


def _steps(log_text):
    return [json.loads(ln)["step"] for ln in log_text.splitlines() if ln.strip()]


def test_resolve_keeps_uris_and_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert files.resolve("runs/x") == str(tmp_path / "runs" / "x")
    assert files.resolve("gs://b/runs/x/") == "gs://b/runs/x"
    assert files.is_remote("gs://b/x") and not files.is_remote("/tmp/x")


def test_the_fake_bucket_is_not_a_local_disk(bucket):
    p = files.path("gs://bucket/probe/a/b.txt")
    files.write_text(p, "hi")  # no parent directory needed, as in a bucket
    assert p.read_text() == "hi" and not os.path.exists("gs://bucket/probe/a/b.txt")
    with pytest.raises(NotImplementedError, match="appended"):
        p.open("a")
    files.makedirs("gs://bucket/probe/empty")  # a no-op: directories are object prefixes
    assert not epath.Path("gs://bucket/probe/empty").exists()
    p.unlink()
    assert not epath.Path("gs://bucket/probe").exists()  # went with its last object


def test_npz_json_and_figures_round_trip_on_both(bucket, tmp_path):
    import matplotlib.pyplot as plt

    for base in (str(tmp_path), "gs://bucket/roundtrip"):
        assert files.save_npz(f"{base}/eval/x", a=np.arange(3.0), b=np.eye(2)).endswith(
            "/eval/x.npz"
        )  # as np.savez names it
        z = files.load_npz(f"{base}/eval/x.npz")
        np.testing.assert_array_equal(z["b"], np.eye(2))
        files.write_json(f"{base}/eval/m.json", {"fid": 1.5})
        assert files.read_json(f"{base}/eval/m.json") == {"fid": 1.5}
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        files.save_figure(fig, f"{base}/f.png")
        plt.close(fig)
        assert files.path(base, "f.png").read_bytes()[:4] == b"\x89PNG"
    assert not [f for f in os.listdir(tmp_path / "eval") if ".tmp" in f]  # renamed into place


def test_metrics_log_appends_locally_and_rewrites_a_bucket_object(bucket, tmp_path):
    for wd in (str(tmp_path), "gs://bucket/log"):
        log = files.MetricsLog(wd, remote_flush_s=3600)
        p = log.path
        log.truncate(0)  # a new run
        for s in (5, 10, 15):
            log.write({"step": s, "loss": 0.1})
        if files.is_remote(wd):  # nothing uploaded between syncs
            assert _steps(p.read_text()) == []
        else:  # each line readable at once, as before
            assert _steps(p.read_text()) == [5, 10, 15]
        log.sync()
        assert _steps(p.read_text()) == [5, 10, 15]
        log.truncate(10)  # a rollback
        log.write({"step": 12})
        log.close()
        assert _steps(p.read_text()) == [5, 10, 12]
        # A resumed run keeps the lines up to its checkpoint; a line cut by a crash goes.
        p.write_text(p.read_text() + '{"step": 13, "lo')
        log = files.MetricsLog(wd)
        log.truncate(10)
        log.write({"step": 11})
        log.close()
        assert _steps(p.read_text()) == [5, 10, 11]


def test_a_config_that_differs_from_the_runs_warns(smoke_config, tmp_path):
    wd = str(tmp_path)
    files.write_config(smoke_config, wd)
    assert files.warn_if_config_differs(smoke_config, wd) == []
    smoke_config.flow.eta = 0.123
    smoke_config.sample.num_samples = 7  # sampling fields may differ freely
    # how the images reach the devices is not the data: not a difference either
    smoke_config.data.pipeline, smoke_config.data.tfds_data_dir = "stream", "/data/tfds"
    assert files.warn_if_config_differs(smoke_config, wd) == ["flow.eta"]


@pytest.mark.slow
def test_train_restore_sample_and_eval_in_a_bucket(bucket, smoke_config, capsys):
    smoke_config.prior.name = "ddp"  # a fitted prior, stored in the work directory
    wd = "gs://bucket/runs/smoke"
    t0 = time.time()
    state = train_mode(smoke_config, wd)  # 20 steps
    first = time.time() - t0
    local = os.path.join(bucket, "runs", "smoke")  # where the fake bucket keeps the objects
    names = {os.path.relpath(os.path.join(d, f), local) for d, _, fs in os.walk(local) for f in fs}
    assert {"config.json", "metrics.jsonl", "metrics.png", "prior.npz"} <= names
    assert {"samples/step_0000010.png", "samples/step_0000020.png"} <= names
    assert "checkpoints/20/commit_success.txt" in names  # orbax's atomic commit on GCS
    assert any(f.startswith("checkpoints/20/default/") and "/d/" in f for f in names)
    assert checkpoints.Checkpointer(f"{wd}/checkpoints").latest_step() == 20
    assert _steps(files.read_text(f"{wd}/metrics.jsonl")) == [5, 10, 15, 20]
    t0 = time.time()
    restored = restore_for_inference(smoke_config, wd)[1]  # from the bucket, bit for bit
    second = time.time() - t0
    assert leaves_equal(restored, state)

    sample_mode(smoke_config, wd)
    z = files.load_npz(f"{wd}/eval/samples.npz")
    assert z["samples"].shape == (smoke_config.sample.num_samples, 2) and int(z["step"]) == 20
    result = eval_mode(smoke_config, wd)
    assert files.read_json(f"{wd}/eval/toy_metrics.json")["step"] == 20 == result["step"]
    assert os.path.exists(os.path.join(local, "eval", "toy_eval.png"))
    with capsys.disabled():
        print(f"\n[bucket run: train 20 steps {first:.1f} s, restore {second:.1f} s]")


@pytest.mark.slow
def test_command_line_run_into_a_bucket(bucket, tmp_path):
    """`--workdir=gs://...` end to end in a fresh process: train, then --mode=eval."""
    base = [sys.executable, os.path.join(ROOT, "tests", "fake_gcs.py")]
    args = ["--config=configs/swissroll.py:smoke", "--workdir=gs://bucket/runs/cli"]
    for mode in ("train", "eval"):
        proc = subprocess.run(
            [*base, *args, f"--mode={mode}"],
            cwd=ROOT,
            env=env(PYTHONPATH=ROOT),  # with the fixture's fake-bucket variables
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    local = os.path.join(bucket, "runs", "cli")
    assert os.path.exists(os.path.join(local, "checkpoints", "20", "commit_success.txt"))
    assert json.load(open(os.path.join(local, "eval", "toy_metrics.json")))["step"] == 20
    assert not os.path.exists(os.path.join(ROOT, "gs:"))  # no local look-alike was written
