"""Reading torch.save files without torch: every tensor as torch reads it, in both layouts, and
nothing the file names is imported or run."""

import io
import os
import sys
import types

import numpy as np
import pytest

from fdrl_jax.errors import DataError
from fdrl_jax.interop import torch_pickle


class _RunsACommand:
    """Unpickling this with plain pickle would run `touch <marker>`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def fake_dill(monkeypatch):
    """A module named like dill's internals, so that a pickle refers to `dill._dill._create_code`
    as the robustness library's checkpoints do (dill pickles functions by value)."""
    pytest.importorskip("torch.utils.data")  # before the fake: torch looks dill up on import
    module = types.ModuleType("dill._dill")

    def _create_code(*args):
        raise AssertionError("the reader called a function named in the file")

    _create_code.__module__, _create_code.__qualname__ = "dill._dill", "_create_code"
    module._create_code = _create_code
    monkeypatch.setitem(sys.modules, "dill", types.ModuleType("dill"))
    monkeypatch.setitem(sys.modules, "dill._dill", module)

    class CodeObject:
        def __reduce__(self):
            return (_create_code, (b"\x00bytecode", 3, 1))

    return CodeObject


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_tensors_read_as_torch_reads_them_and_nothing_runs(tmp_path, legacy, fake_dill):
    torch = pytest.importorskip("torch", reason="writes its files with torch==2.13.0 (CPU)")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "w": torch.randn(3, 4, generator=torch.Generator().manual_seed(0)),
        "transposed": base.t(),  # non-contiguous
        "slice": base[1:3, 2:5],  # an offset into a shared storage
        "count": torch.tensor(7, dtype=torch.int64),
        "half": torch.linspace(-1, 1, 5, dtype=torch.float16),
        "empty": torch.zeros(0, 3),
    }
    marker = tmp_path / "ran"
    checkpoint = {
        "model": state,
        "schedule": fake_dill(),
        "hook": _RunsACommand(marker),
        "epoch": 12,
    }
    path = tmp_path / "ckpt.pt"
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(Exception, match="(?i)unsupported|weights_only"):
        torch.load(path, weights_only=True)  # what the reader is for

    loaded = torch_pickle.load(path)
    assert not marker.exists()
    assert loaded["epoch"] == 12
    assert isinstance(loaded["hook"], torch_pickle.Opaque) and "system" in loaded["hook"].name
    assert loaded["schedule"].name == "dill._dill._create_code"
    assert set(loaded["model"]) == set(state)
    for key, tensor in state.items():
        ours = loaded["model"][key]
        assert ours.dtype == tensor.numpy().dtype and ours.shape == tuple(tensor.shape), key
        np.testing.assert_array_equal(ours, tensor.numpy())


def test_other_files_are_a_clear_error(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="not a torch.save file"):
        torch_pickle.load(path)
    with pytest.raises(FileNotFoundError):
        torch_pickle.load(tmp_path / "missing.pt")


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")
def test_torchscript_archives_give_their_parameters(tmp_path):
    torch = pytest.importorskip("torch", reason="writes its files with torch==2.13.0 (CPU)")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buf)
    ours = torch_pickle.state_dict_arrays(torch_pickle.load(buf.getvalue()))
    ref = {k: v.numpy() for k, v in net.state_dict().items()}
    assert set(ours) == set(ref)
    for k, v in ref.items():
        np.testing.assert_array_equal(ours[k], v)
