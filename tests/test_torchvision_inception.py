"""The paper's FID network (`evaluation/torchvision_inception.py`, `eval.feature_net =
torchvision`): torchvision's Inception-v3 run as the authors' FID code runs it, and its weights
read from torchvision's checkpoint file."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

from fdrl_jax.errors import DataError
from fdrl_jax.evaluation import features
from fdrl_jax.evaluation import inception as inc
from fdrl_jax.evaluation import inception_weights as incw
from fdrl_jax.evaluation import torchvision_inception as tvi


def _max_rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def _random_variables(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    flat = {k: rng.normal(size=s).astype(np.float32) for k, s in inc.expected_shapes().items()}
    return traverse_util.unflatten_dict(flat)


@pytest.mark.slow
def test_features_match_torchvision_inception_as_the_paper_runs_it(tmp_path):
    torch = pytest.importorskip("torch", reason="the reference needs torch==2.13.0 (CPU)")
    import torch_nets

    net = torch_nets.inception_module(torch).Inception3(num_classes=1000, aux_logits=True)
    torch_nets.randomize(torch, net)
    net.eval()
    pth = tmp_path / tvi.CHECKPOINT
    torch.save(net.state_dict(), pth)  # torchvision publishes a plain state dict

    rng = np.random.default_rng(0)
    images01 = rng.uniform(0, 1, size=(2, 3, 37, 45)).astype(np.float32)  # NCHW in [0, 1]
    with torch.no_grad():
        ref = net.paper_pool3(torch.from_numpy(images01)).numpy()

    eval_cfg = ml_collections.ConfigDict({"feature_net": "torchvision"})
    eval_cfg.torchvision_weights = str(pth)
    feature_fn = features.build_feature_fn(eval_cfg, (37, 45, 3))
    ours = feature_fn(jnp.asarray(images01.transpose(0, 2, 3, 1) * 2 - 1))
    assert ours.shape == (2, 2048) and np.abs(ref).max() > 0
    assert _max_rel_err(ours, ref) < 1e-4
    # Converted once to a .npz, the same weights; the TF-FID pools on them give other features.
    npz = tvi.convert_file(pth, tmp_path / "tv")
    from_pth = traverse_util.flatten_dict(tvi.resolve_weights(pth))
    from_npz = traverse_util.flatten_dict(tvi.resolve_weights(npz))
    assert from_pth.keys() == from_npz.keys()
    assert all(np.array_equal(from_pth[k], from_npz[k]) for k in from_pth)
    x299 = inc.resize_bilinear(jnp.asarray(images01.transpose(0, 2, 3, 1) * 2 - 1), (299, 299))
    tf_pools = jax.jit(inc.InceptionV3FID(resize_input=False).apply)(tvi.resolve_weights(npz), x299)
    assert _max_rel_err(tf_pools, ref) > 1e-2


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv(tvi.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(FileNotFoundError, match=r"0cc3c7bd\.pth.*eval\.torchvision_weights"):
        tvi.resolve_weights()
    assert str(tvi.default_path()).startswith(str(tmp_path / "torch_home" / "hub"))


def test_weights_of_the_other_network_are_refused(tmp_path):
    variables = _random_variables()
    tf_npz = incw.save_flax_weights(variables, tmp_path / "tf")
    tv_npz = incw.save_flax_weights(variables, tmp_path / "tv", feature_net="torchvision")
    with pytest.raises(DataError, match="eval.inception_weights"):
        tvi.resolve_weights(tf_npz)
    with pytest.raises(DataError, match="eval.torchvision_weights"):
        incw.resolve_inception_weights(tv_npz)
    # pytorch-fid's state dict (the TF network, 1008 classes) is not torchvision's
    sd = {"fc.weight": np.zeros((1008, 2048)), "fc.bias": np.zeros(1008)}
    with pytest.raises(DataError, match="1008-class"):
        tvi.convert_state_dict(sd, "pt_inception.pth")
