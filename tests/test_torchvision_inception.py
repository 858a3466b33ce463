"""The paper's FID network (`eval.feature_net = torchvision`): torchvision's Inception-v3 run as
the authors' FID code runs it, its weights read from torchvision's checkpoint file, and FID
statistics that carry the name of the network that made them."""

import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

from fdrl_jax import configlib
from fdrl_jax.errors import ConfigError, DataError
from fdrl_jax.evaluation import features, fid
from fdrl_jax.evaluation import inception as inc
from fdrl_jax.evaluation import inception_weights as incw
from fdrl_jax.evaluation import torchvision_inception as tvi
from fdrl_jax.run.evaluation import reference_statistics


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
    tf_pools = inc.InceptionV3FID(resize_input=False).apply(tvi.resolve_weights(npz), x299)
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


# ----------------------------------------------------------------------------------------------
# Statistics name their network; eval refuses another network's


def _stats(seed: int = 0) -> fid.Statistics:
    return fid.statistics_from_features(np.random.default_rng(seed).normal(size=(20, 4)))


def _eval_config(feature_net: str, fid_stats: str, fid_stats_net: str = ""):
    config = configlib.default_config()
    config.eval.feature_net, config.eval.fid_stats = feature_net, fid_stats
    config.eval.fid_stats_net = fid_stats_net
    return config


def test_statistics_files_name_their_network_and_stay_pytorch_fid_files(tmp_path):
    path = fid.save_statistics(tmp_path / "s", _stats(), feature_net="torchvision")
    stats, name = fid.load_named_statistics(path)
    assert name == "torchvision" and np.array_equal(stats.mu, _stats().mu)
    with np.load(path) as z:  # what pytorch-fid reads: mu and sigma, no pickles
        assert {"mu", "sigma"} <= set(z.files)
    unnamed = fid.save_statistics(tmp_path / "u", _stats())
    assert fid.load_named_statistics(unnamed)[1] is None


def test_eval_refuses_statistics_of_another_feature_network(tmp_path):
    named = fid.save_statistics(tmp_path / "inc", _stats(), feature_net="inception")
    unnamed = fid.save_statistics(tmp_path / "authors_cifar10_stats", _stats())
    wd = str(tmp_path)

    def reference(config):
        return reference_statistics(config, None, None, wd)

    with pytest.raises(ConfigError, match="'inception' feature network.*'torchvision'"):
        reference(_eval_config("torchvision", named))
    with pytest.raises(ConfigError, match="eval.fid_stats_net"):
        reference(_eval_config("torchvision", unnamed))
    with pytest.raises(ConfigError, match="'inception' feature network.*'torchvision'"):
        reference(_eval_config("torchvision", unnamed, fid_stats_net="inception"))
    with pytest.raises(ConfigError, match="leave eval.fid_stats_net empty"):
        reference(_eval_config("inception", named, fid_stats_net="torchvision"))
    # the right network: accepted, named by the file or by the config
    stats, path = reference(_eval_config("inception", named))
    assert path == named and np.array_equal(stats.sigma, _stats().sigma)
    stats, _ = reference(_eval_config("torchvision", unnamed, fid_stats_net="torchvision"))
    assert np.array_equal(stats.mu, _stats().mu)


@pytest.mark.slow
def test_eval_names_its_network_in_every_fid_it_writes(tmp_path):
    """A smoke run's eval (the random stand-in network): fid.json, fid_vs_flow_length.json and
    the cached reference statistics say which network made them; another network's
    statistics are refused before any sampling."""
    from fdrl_jax import run

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = configlib.load_config(os.path.join(root, "configs", "digits.py") + ":smoke")
    config.eval.figures = False
    wd = str(tmp_path / "run")
    run.train(config, wd)
    run.evaluate(config, wd)
    out = os.path.join(wd, "eval")
    for name in ("fid.json", "fid_vs_flow_length.json", "image_metrics.json"):
        with open(os.path.join(out, name)) as f:
            assert '"feature_net": "random"' in f.read(), name
    cached = [f for f in os.listdir(out) if f.startswith("reference_stats_")]
    assert len(cached) == 1
    assert fid.load_named_statistics(os.path.join(out, cached[0]))[1] == "random"
    config.eval.fid_stats = fid.save_statistics(tmp_path / "s", _stats(), feature_net="inception")
    with pytest.raises(ConfigError, match="'inception' feature network.*'random'"):
        run.evaluate(config, wd)
