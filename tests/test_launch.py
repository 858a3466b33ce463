"""The launch scripts parse, and refuse to start without their arguments."""

import glob
import os
import subprocess

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
