"""Work directories in buckets: every run file goes through etils.epath, so training,
resuming, sampling and evaluating work with `--workdir=gs://...`. The bucket is
`tests/fake_gcs.py`: a local directory behind tensorstore's real gcs driver (orbax's array
data, over HTTP on localhost) and an fsspec filesystem for epath (everything else)."""

import json
import os
import subprocess
import sys
import time

import fake_gcs
import jax
import numpy as np
import pytest
from etils import epath

from fdrl_jax import run
from fdrl_jax.run import checkpoints, training, workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """A fake `gs://bucket` for this module (tensorstore reads its server's address once per
    process, so one server serves every test here). Yields the bucket's local directory."""
    root = str(tmp_path_factory.mktemp("gcs"))
    os.makedirs(os.path.join(root, "bucket"))
    saved, writer = dict(os.environ), training.open_writer
    with fake_gcs.FakeGCSServer(root) as server:
        os.environ.update(fake_gcs.env(root, server.url))
        fake_gcs.register()  # also turns TensorBoard summaries off: put them back after
        yield os.path.join(root, "bucket")
    os.environ.clear()
    os.environ.update(saved)
    training.open_writer = writer


def _equal(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _steps(log_text):
    return [json.loads(ln)["step"] for ln in log_text.splitlines() if ln.strip()]


def test_resolve_keeps_uris_and_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert workdir.resolve("runs/x") == str(tmp_path / "runs" / "x")
    assert workdir.resolve("gs://b/runs/x/") == "gs://b/runs/x"
    assert workdir.is_remote("gs://b/x") and not workdir.is_remote("/tmp/x")


def test_the_fake_bucket_is_not_a_local_disk(bucket):
    p = workdir.path("gs://bucket/probe/a/b.txt")
    workdir.write_text(p, "hi")  # no parent directory needed, as in a bucket
    assert p.read_text() == "hi" and not os.path.exists("gs://bucket/probe/a/b.txt")
    with pytest.raises(NotImplementedError, match="appended"):
        p.open("a")
    workdir.makedirs("gs://bucket/probe/empty")  # a no-op: directories are object prefixes
    assert not epath.Path("gs://bucket/probe/empty").exists()
    p.unlink()
    assert not epath.Path("gs://bucket/probe").exists()  # went with its last object


def test_npz_json_and_figures_round_trip_on_both(bucket, tmp_path):
    import matplotlib.pyplot as plt

    for base in (str(tmp_path), "gs://bucket/roundtrip"):
        assert workdir.save_npz(f"{base}/eval/x", a=np.arange(3.0), b=np.eye(2)).endswith(
            "/eval/x.npz"
        )  # as np.savez names it
        z = workdir.load_npz(f"{base}/eval/x.npz")
        np.testing.assert_array_equal(z["b"], np.eye(2))
        workdir.write_json(f"{base}/eval/m.json", {"fid": 1.5})
        assert workdir.read_json(f"{base}/eval/m.json") == {"fid": 1.5}
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        workdir.save_figure(fig, f"{base}/f.png")
        plt.close(fig)
        assert workdir.path(base, "f.png").read_bytes()[:4] == b"\x89PNG"
    assert not [f for f in os.listdir(tmp_path / "eval") if ".tmp" in f]  # renamed into place


def test_metrics_log_appends_locally_and_rewrites_a_bucket_object(bucket, tmp_path):
    for wd in (str(tmp_path), "gs://bucket/log"):
        log = workdir.MetricsLog(wd, remote_flush_s=3600)
        p = log.path
        log.truncate(0)  # a new run
        for s in (5, 10, 15):
            log.write({"step": s, "loss": 0.1})
        if workdir.is_remote(wd):  # nothing uploaded between syncs
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
        log = workdir.MetricsLog(wd)
        log.truncate(10)
        log.write({"step": 11})
        log.close()
        assert _steps(p.read_text()) == [5, 10, 11]


@pytest.mark.slow
def test_train_resume_sample_and_eval_in_a_bucket(bucket, smoke_config, tmp_path, capsys):
    smoke_config.prior.name = "ddp"  # a fitted prior, stored in the work directory
    wd = "gs://bucket/runs/smoke"
    t0 = time.time()
    run.train(smoke_config, wd)  # 20 steps
    first = time.time() - t0
    local = os.path.join(bucket, "runs", "smoke")  # where the fake bucket keeps the objects
    files = {os.path.relpath(os.path.join(d, f), local) for d, _, fs in os.walk(local) for f in fs}
    assert {"config.json", "metrics.jsonl", "metrics.png", "prior.npz"} <= files
    assert {"samples/step_0000010.png", "samples/step_0000020.png"} <= files
    assert "checkpoints/20/commit_success.txt" in files  # orbax's atomic commit on GCS
    assert any(f.startswith("checkpoints/20/default/") and "/d/" in f for f in files)
    assert checkpoints.Checkpointer(f"{wd}/checkpoints").latest_step() == 20

    smoke_config.train.num_steps = 30
    t0 = time.time()
    resumed = run.train(smoke_config, wd)  # restores step 20 from the bucket
    second = time.time() - t0
    reference = run.train(smoke_config, str(tmp_path / "local"))
    assert _equal(resumed, reference)
    assert _steps(workdir.read_text(f"{wd}/metrics.jsonl")) == [5, 10, 15, 20, 25, 30]

    run.sample(smoke_config, wd)
    z = workdir.load_npz(f"{wd}/eval/samples.npz")
    assert z["samples"].shape == (smoke_config.sample.num_samples, 2) and int(z["step"]) == 30
    result = run.evaluate(smoke_config, wd)
    assert workdir.read_json(f"{wd}/eval/toy_metrics.json")["step"] == 30 == result["step"]
    assert os.path.exists(os.path.join(local, "eval", "toy_eval.png"))
    with capsys.disabled():
        print(f"\n[bucket run: train 20 steps {first:.1f} s, resume to 30 {second:.1f} s]")


@pytest.mark.slow
def test_command_line_run_into_a_bucket(bucket, tmp_path):
    """`--workdir=gs://...` end to end in a fresh process: train, then --mode=eval."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")  # the fixture's fake-bucket variables
    base = [sys.executable, os.path.join(ROOT, "tests", "fake_gcs.py")]
    args = ["--config=configs/swissroll.py:smoke", "--workdir=gs://bucket/runs/cli"]
    for mode in ("train", "eval"):
        proc = subprocess.run(
            [*base, *args, f"--mode={mode}"],
            cwd=ROOT,
            env=dict(env, PYTHONPATH=ROOT),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    local = os.path.join(bucket, "runs", "cli")
    assert os.path.exists(os.path.join(local, "checkpoints", "20", "commit_success.txt"))
    assert json.load(open(os.path.join(local, "eval", "toy_metrics.json")))["step"] == 20
    assert not os.path.exists(os.path.join(ROOT, "gs:"))  # no local look-alike was written
