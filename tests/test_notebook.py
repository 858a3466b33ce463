"""notebooks/quickstart.ipynb runs top to bottom (with FDRL_QUICK=1: a few steps per model)."""

import json
import os

import matplotlib
import pytest

pytestmark = pytest.mark.slow  # the package in subprocesses / end to end

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.setenv("FDRL_QUICK", "1")
    monkeypatch.setenv("FDRL_WORKDIR", str(tmp_path))
    monkeypatch.chdir(os.path.join(ROOT, "notebooks"))
    with open("quickstart.ipynb") as f:
        cells = [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]
    namespace = {}
    for cell in cells:  # the cells in order, in one namespace, as a kernel runs them
        exec(compile("".join(cell["source"]), "quickstart.ipynb", "exec"), namespace)
    assert namespace["x"].shape == (1000, 8, 8, 1)
    assert os.path.exists(tmp_path / "digits" / "metrics.jsonl")
