"""The hardware check's one command runs end to end (its `--smoke` variant, on the CPU)."""

import json
import os
import subprocess
import sys

import helpers
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_gpu_check_smoke_writes_every_figure(tmp_path):
    out = tmp_path / "check"
    env = helpers.env(devices=1, PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", str(out), "--smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    report = (out / "report.md").read_text()
    for section in ("| cifar10-nosn | float32 |", "Learning curve", "(the prior alone)"):
        assert section in report, report
    speed = json.loads((out / "speed.json").read_text())
    assert speed["rows"][0]["ms_per_iteration"] > 0
    metrics = [
        json.loads(x) for x in (out / "cifar10_nosn" / "metrics.jsonl").read_text().splitlines()
    ]
    assert metrics[-1]["step"] == 6 and all("out_q" in m and "out_p" in m for m in metrics)
    fid = json.loads((out / "cifar10_nosn" / "eval" / "image_metrics.json").read_text())
    assert set(fid["fid_vs_flow_length"]) == {"0", "2", "3", "4"}
