"""The launch scripts parse, and refuse to start without their arguments."""

import glob
import os
import signal
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "launch", "*")))


def test_launch_scripts_parse():
    assert {os.path.basename(s) for s in SCRIPTS} >= {"tpu_pod.sh", "multi_gpu.sh", "slurm.sbatch"}
    for script in SCRIPTS:
        subprocess.run(["bash", "-n", script], check=True)


def test_launch_scripts_need_their_arguments():
    env = {k: v for k, v in os.environ.items() if k not in ("TPU_NAME", "CONFIG", "WORKDIR")}
    for script, message in [
        ("multi_gpu.sh", "usage"),
        ("slurm.sbatch", "usage"),
        ("tpu_pod.sh", "set TPU_NAME"),
    ]:
        proc = subprocess.run(
            ["bash", os.path.join(ROOT, "launch", script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode != 0 and message in proc.stderr, (script, proc.stderr)


def test_tpu_script_wants_a_bucket_work_directory():
    env = dict(os.environ, TPU_NAME="t", ZONE="z", CONFIG="configs/swissroll.py", WORKDIR="/mnt/x")
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "launch", "tpu_pod.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "gs://" in proc.stderr


def _stub(directory, name, body):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("#!/usr/bin/env bash\n" + body)
    os.chmod(path, 0o755)


def test_slurm_time_limit_signal_stops_the_tasks_and_requeues(tmp_path):
    """SLURM's USR1 (--signal=B:USR1@180) makes the script SIGTERM the tasks, wait for them
    to save and exit 0, then requeue the job, which resumes. srun/scancel/scontrol are stubs:
    the stub task saves on SIGTERM, like fdrl_jax.main."""
    bin_dir, calls = str(tmp_path / "bin"), str(tmp_path / "calls")
    os.makedirs(bin_dir)
    _stub(
        bin_dir,
        "srun",
        f"echo $$ > {tmp_path}/task.pid\n"
        f"trap 'sleep 1; echo \"task saved\" >> {calls}; exit 0' TERM\n"
        f'echo "srun $*" >> {calls}\n'
        "while true; do sleep 0.1; done\n",
    )
    _stub(
        bin_dir, "scancel", f'echo "scancel $*" >> {calls}\nkill -TERM $(cat {tmp_path}/task.pid)\n'
    )
    _stub(bin_dir, "scontrol", f'echo "scontrol $*" >> {calls}\n')
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="4242")
    env["SLURM_SUBMIT_DIR"] = ROOT
    proc = subprocess.Popen(
        ["bash", os.path.join(ROOT, "launch", "slurm.sbatch"), "configs/swissroll.py", "/wd"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 30
    while not (os.path.exists(calls) and "srun" in open(calls).read()):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = open(calls).read().splitlines()
    assert lines[0].startswith("srun --kill-on-bad-exit=1 python -m fdrl_jax.main")
    assert "--workdir=/wd --distributed=on" in lines[0]
    # The task saved before the job was requeued.
    assert lines[1:] == ["scancel --signal=TERM 4242", "task saved", "scontrol requeue 4242"]
