"""Multi-process runs (`run/multihost.py`), with 2 CPU processes × 2 devices joined by
jax.distributed: they train the one-process model; a preemption (SIGTERM to every process)
saves one step everywhere and exits 0, a lost process (SIGKILL) stops the others with a
message naming it, and the job resumes to the uninterrupted run; mismatched configs stop every
process at start-up. Each test prints the times it measured, past pytest's capture."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers import ROOT, assert_close, configs, env, leaves_equal

from fdrl_jax import configlib
from fdrl_jax.modes.train_mode import train_mode
from fdrl_jax.run import multihost
from fdrl_jax.run.checkpoints import restore_for_inference

STEPS = 60
# Frequent logging makes the host wait for the devices every 2 steps: with many steps in
# flight, 2-process gloo runs on a 2-core machine can deadlock in a CollectivePermute.
ARGS = [
    "--config=configs/swissroll.py:smoke",
    f"--config.train.num_steps={STEPS}",
    "--config.train.log_every=2",
    "--config.train.checkpoint_every=10",
    "--config.train.sample_every=100000",
]


def _config():
    """What ARGS load."""
    c = configlib.load_config(configs("swissroll.py:smoke"))
    c.train.num_steps, c.train.log_every, c.train.sample_every = STEPS, 2, 100000
    c.train.checkpoint_every = 10
    return c


class Job:
    """Two processes of `fdrl_jax.main`, each with 2 CPU devices; stderr to files."""

    def __init__(self, workdir, logdir, *args, per_process=((), ())):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.makedirs(logdir, exist_ok=True)
        self.logs = [os.path.join(logdir, f"p{i}-{time.monotonic_ns()}.log") for i in range(2)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "fdrl_jax.main", *ARGS, *args, *per_process[i]]
                + [f"--workdir={workdir}", f"--coordinator_address=127.0.0.1:{port}"]
                + ["--num_processes=2", f"--process_id={i}"],
                cwd=ROOT,
                env=env(devices=2),
                stdout=subprocess.DEVNULL,
                stderr=open(self.logs[i], "w"),
            )
            for i in range(2)
        ]

    def log(self, i: int) -> str:
        return open(self.logs[i]).read()

    def wait(self, timeout: float = 600) -> list[tuple[int, float]]:
        """(exit status, seconds from now until it exited) per process."""
        t0, out = time.monotonic(), [None, None]
        while None in out:
            for i, p in enumerate(self.procs):
                if out[i] is None and p.poll() is not None:
                    out[i] = (p.returncode, time.monotonic() - t0)
            if time.monotonic() - t0 > timeout:
                self.kill()
                pytest.fail(f"processes still running after {timeout} s: {out}")
            time.sleep(0.05)
        return out

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def check_ok(self) -> None:
        for i, (rc, _) in enumerate(self.wait()):
            assert rc == 0, self.log(i)[-3000:]


def _logged_step(workdir) -> int:
    try:
        lines = open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()
    except FileNotFoundError:
        return 0
    steps = [0]
    for ln in lines:
        try:
            steps.append(json.loads(ln)["step"])
        except (json.JSONDecodeError, KeyError):
            pass
    return steps[-1]


def _wait_for(cond, job: Job, timeout: float = 300) -> None:
    t0 = time.monotonic()
    while not cond():
        if any(p.poll() is not None for p in job.procs) or time.monotonic() - t0 > timeout:
            job.kill()
            pytest.fail("the run ended or stalled before the test could act: " + job.log(0)[-3000:])
        time.sleep(0.05)


def _latest(workdir):
    """The newest complete checkpoint's step: orbax names a finished one by its step (a cheap
    look, polled while the processes run)."""
    d = os.path.join(workdir, "checkpoints")
    return (
        max((int(n) for n in os.listdir(d) if n.isdigit()), default=None)
        if os.path.isdir(d)
        else None
    )


def _state(workdir):
    return restore_for_inference(_config(), workdir)[1]


def _report(capsys, message: str) -> None:
    """Print past pytest's capture: the measured times appear in every test log (CI's too)."""
    with capsys.disabled():
        print(f"\n[{message}]", flush=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final state of an uninterrupted 2-process run of STEPS steps."""
    wd = str(tmp_path_factory.mktemp("uninterrupted"))
    Job(wd, wd + "_logs").check_ok()
    return _state(wd)


@pytest.mark.slow
def test_two_processes_train_the_one_process_model(tmp_path, uninterrupted):
    """The same steps on 2 processes × 2 devices as on one device (to float rounding of the
    batch reductions)."""
    one = train_mode(_config(), str(tmp_path / "one"))
    assert_close(uninterrupted.params, one.params)
    assert_close(uninterrupted.ema_params, one.ema_params)


@pytest.mark.slow
def test_a_preempted_then_crashed_job_resumes_to_the_uninterrupted_run(
    tmp_path, uninterrupted, capsys
):
    """SIGTERM to every process (a preemption) saves one step everywhere and exits 0; the
    restart resumes from it. A SIGKILL of process 1 (found by the watchdog), then of process 0
    (which runs the coordination service), stops the survivor with a message naming the loss
    and loses nothing complete. The last restart ends on the uninterrupted run's state."""
    wd, logs = str(tmp_path / "run"), str(tmp_path / "logs")
    job = Job(wd, logs)
    _wait_for(lambda: _logged_step(wd) >= 10, job)
    t0 = time.monotonic()
    for p in job.procs:  # a preemption reaches the hosts at slightly different times
        p.send_signal(signal.SIGTERM)
        time.sleep(0.5)
    exits = job.wait(timeout=120)
    report = [f"SIGTERM to both processes (0.5 s apart): exited {time.monotonic() - t0:.1f} s"]
    saved = []
    for i, (rc, _) in enumerate(exits):
        assert rc == 0, job.log(i)[-3000:]
        saved += [int(s) for s in re.findall(r"saved the checkpoint of step (\d+)", job.log(i))]
    assert len(saved) == 2 and saved[0] == saved[1], saved  # one step, on every process
    stopped = saved[0]
    assert 10 < stopped < STEPS - 20 and _latest(wd) == stopped, saved  # room for 2 more

    for victim in (1, 0):  # a worker; then process 0
        job = Job(wd, logs, "--peer_timeout=5")
        before = _latest(wd)
        _wait_for(lambda b=before: _latest(wd) > b and _logged_step(wd) % 10 >= 6, job)
        complete = _latest(wd)
        t0 = time.monotonic()
        job.procs[victim].kill()
        survivor = 1 - victim
        rc, _ = job.wait(timeout=180)[survivor]
        to_exit = time.monotonic() - t0
        log = job.log(survivor)
        assert f"Resumed from step {before}" in job.log(0), job.log(0)[-3000:]
        assert rc != 0 and to_exit < 120, (rc, to_exit, log[-3000:])
        if victim == 1:  # found by the watchdog
            assert rc == multihost.EXIT_PEER_LOST and "Lost process 1 of 2" in log, log[-3000:]
        else:  # jax's client loses its coordination service at once
            assert "coordination service" in log, log[-3000:]
        report.append(
            f"SIGKILL to process {victim}: process {survivor} exited {rc} after {to_exit:.1f} s"
        )
        assert _latest(wd) >= complete  # nothing complete was lost

    t0 = time.monotonic()
    job = Job(wd, logs)
    job.check_ok()
    to_finish = time.monotonic() - t0
    resumed = int(re.search(r"Resumed from step (\d+)", job.log(0)).group(1))
    assert resumed % 10 == 0 and resumed >= complete
    assert leaves_equal(_state(wd), uninterrupted)
    _report(
        capsys,
        "; ".join(report) + f"; the restart resumed from step {resumed} (the last complete "
        f"checkpoint), ran to {STEPS} in {to_finish:.1f} s and equals the uninterrupted run",
    )


@pytest.mark.slow
def test_processes_with_different_configs_stop_at_start_up(tmp_path, capsys):
    wd = str(tmp_path / "run")
    t0 = time.monotonic()
    job = Job(wd, str(tmp_path / "logs"), per_process=((), ("--config.flow.eta=0.5",)))
    exits = job.wait(timeout=120)
    for i, (rc, _) in enumerate(exits):
        log = job.log(i)
        # a user error: the message alone, exit status 2
        assert rc == 2 and "Error: The processes of this run were started with" in log, log[-3000:]
        eta = configlib.load_config(configs("swissroll.py:smoke")).flow.eta
        assert f"process 1 differs from process 0 in: config.flow.eta ({eta} vs 0.5)" in log
        assert "Traceback" not in log
    assert not os.path.exists(os.path.join(wd, "checkpoints"))  # stopped before training
    _report(
        capsys, f"config mismatch: both processes stopped {time.monotonic() - t0:.1f} s after start"
    )


# ----------------------------------------------------------------- in-process unit tests


def test_config_differences_name_every_field_with_both_values():
    a = {"config": {"flow": {"eta": 0.2, "nu": 0.0}, "seed": 0}, "workdir": "/r", "mode": "train"}
    b = {"config": {"flow": {"eta": 0.5, "nu": 0.0}, "extra": 1}, "workdir": "/r", "mode": "eval"}
    assert multihost.config_differences(a, b) == [
        "config.extra ('<absent>' vs 1)",
        "config.flow.eta (0.2 vs 0.5)",
        "config.seed (0 vs '<absent>')",
        "mode ('train' vs 'eval')",
    ]
    assert multihost.config_differences(a, a) == []


def test_one_process_stop_requests_are_signals_caught_between_steps():
    with multihost.StopRequests() as stop:
        assert not stop.check(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.check(2) and stop.check(3)  # latched
        assert stop.received == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


class _FakeClient:
    """The key-value part of jax's coordination-service client."""

    def __init__(self):
        self.kv = {}

    def key_value_set(self, key, value, allow_overwrite=False):
        self.kv[key] = value

    def key_value_dir_get(self, prefix):
        return [(k, v) for k, v in self.kv.items() if k.startswith(prefix)]


def _watchdog(monkeypatch, n=3):
    client = _FakeClient()
    monkeypatch.setattr(multihost, "_client", lambda: client)
    monkeypatch.setattr(multihost, "process_count", lambda: n)

    def exit_(code):
        raise SystemExit(code)

    monkeypatch.setattr(multihost.os, "_exit", exit_)
    return multihost._Watchdog(timeout_s=0.5, interval_s=0.05), client


def test_watchdog_names_a_silent_process_and_not_a_finished_one(monkeypatch, capsys):
    dog, client = _watchdog(monkeypatch)
    client.kv["fdrl_jax/alive/2"] = "done"  # finished: never counted as lost
    beats = iter(range(10**6))

    def run():  # process 1 beats for 0.3 s, then falls silent
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.3:
            client.kv["fdrl_jax/alive/1"] = str(next(beats))
            time.sleep(0.02)

    threading.Thread(target=run, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as e:
        dog._run()
    assert e.value.code == multihost.EXIT_PEER_LOST
    assert 0.7 < time.monotonic() - t0 < 2.0  # silent for the timeout, after 0.3 s of beats
    err = capsys.readouterr().err
    assert "Lost process 1 of 3: it sent no heartbeat" in err and "process 2" not in err
    assert client.kv["fdrl_jax/alive/0"].startswith("left:Lost process 1")


def test_watchdog_stops_at_once_when_another_process_raised(monkeypatch, capsys):
    dog, client = _watchdog(monkeypatch, n=2)
    client.kv["fdrl_jax/alive/1"] = "error:process 1: OSError: disk full"
    with pytest.raises(SystemExit):
        dog._run()
    assert "it stopped with an error: process 1: OSError: disk full" in capsys.readouterr().err


def test_a_process_that_raises_reports_with_the_callers_report_and_its_status(monkeypatch):
    """main.py passes a report that prints a user error's message alone and returns 2."""
    dog, client = _watchdog(monkeypatch, n=2)
    client.kv["fdrl_jax/alive/1"] = "done"  # the other process has finished: no wait
    dog._thread.start()
    reported = []
    with pytest.raises(SystemExit) as e:
        dog.fail_here(OSError("disk full"), lambda err: reported.append(err) or 2)
    assert e.value.code == 2 and str(reported[0]) == "disk full"
    assert client.kv["fdrl_jax/alive/0"] == "error:process 0: OSError: disk full"


ERROR_ON_ONE = """
import sys, time
import jax
from fdrl_jax.run import multihost
jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
with multihost.watch_peers(timeout_s=30):
    if jax.process_index() == 1:
        time.sleep(2)
        raise OSError("disk full")
    time.sleep(120)  # process 0: as if waiting in a collective
"""


@pytest.mark.slow
def test_an_error_on_one_process_stops_the_others_within_seconds(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ERROR_ON_ONE, address, str(i)],
            cwd=ROOT,
            env=env(devices=1),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    t0 = time.monotonic()
    errs = [p.communicate(timeout=90)[1] for p in procs]
    elapsed = time.monotonic() - t0
    assert procs[0].returncode == multihost.EXIT_PEER_LOST, errs[0][-3000:]
    assert "Lost process 1 of 2: it stopped with an error: process 1: OSError: disk full" in errs[0]
    assert procs[1].returncode == 1 and "OSError: disk full" in errs[1]
    assert elapsed < 30  # seconds, not the 30 s heartbeat timeout
    _report(capsys, f"an error on process 1: both processes stopped {elapsed:.1f} s after start")
