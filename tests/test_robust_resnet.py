"""The robustness library's CIFAR ResNet-50 imported from its checkpoint layout: the same
logits and input gradients as the PyTorch network, and `--mode=conditional` guided by it."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ROOT, configs, copy_run, env

from fdrl_jax import configlib, robust_resnet
from fdrl_jax.errors import ConfigError, DataError, MissingFileError
from fdrl_jax.interop import robustness
from fdrl_jax.modes.classifier_mode import classifier_mode
from fdrl_jax.modes.conditional_mode import conditional_mode
from fdrl_jax.run.checkpoints import restore_for_inference
from fdrl_jax.sampler import Sampler, conditional_sampler


def _load(path):
    """(apply_fn, variables) of a converted file."""
    net, variables = robust_resnet.load(path)
    return net.apply, variables


def _max_rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def _checkpoint(torch, path, wm, legacy=True, seed=0):
    """A random-weights AttackerModel saved as the library saves it: DataParallel's 'module.'
    prefix, its optimiser and epoch beside the weights, the legacy (pre-zip) file layout."""
    import torch_nets

    net = torch_nets.robustness_resnet50(torch, wm=wm)
    torch_nets.randomize(torch, net, seed)
    net.eval()
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9).state_dict()
    torch.save(
        {"model": sd, "optimizer": opt, "schedule": None, "epoch": 150},
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    return net


def _images(n, side=32, seed=0):
    # [-1, 1] pixels with some beyond the range (the flow's particles are not clamped)
    return np.random.default_rng(seed).uniform(-1.2, 1.2, (n, side, side, 3)).astype(np.float32)


def _torch_logp(torch, net, x, label):
    """log p(label | x) summed over x (NHWC, [-1, 1]) as the paper's notebook computes it:
    the classifier of (x + 1) / 2, in x's precision."""
    net = net.double() if x.dtype == np.float64 else net.float()
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    logits = net((xt + 1) / 2)
    logp = torch.log_softmax(logits, -1)[:, label].sum()
    logp.backward()
    return logits.detach().numpy(), xt.grad.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_logits_and_input_gradient_match_pytorch(tmp_path, legacy):
    torch = pytest.importorskip("torch", reason="the reference needs torch==2.13.0 (CPU)")
    # The ResNet-50's layout at 1/8 of its width (the library's `wm`): same code, 64× cheaper.
    net = _checkpoint(torch, tmp_path / "cifar_l2.pt", wm=0.125, legacy=legacy)
    out = robustness.import_checkpoint(tmp_path / "cifar_l2.pt", str(tmp_path / "robust"))
    assert out.endswith("robust.npz")
    apply_fn, variables = _load(out)
    x = _images(3)
    ref_logits, _ = _torch_logp(torch, net, x, label=4)
    logits = jax.jit(apply_fn)(variables, jnp.asarray(x))
    assert logits.shape == (3, 10) and np.abs(ref_logits).max() > 1
    assert _max_rel_err(logits, ref_logits) < 1e-4
    # Input gradients in float64 on both sides: in float32, pre-activations within rounding of
    # zero fall on either side of a ReLU depending on the CPU's convolution kernels (a 5% error
    # on one machine, 1e-6 on another); in float64 no kink is that close.
    x64 = x.astype(np.float64)
    _, ref_grad = _torch_logp(torch, net, x64, label=4)
    with jax.enable_x64(True):
        v64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
        logp = lambda v, z: jax.nn.log_softmax(apply_fn(v, z))[:, 4].sum()  # noqa: E731
        grad = jax.jit(jax.grad(logp, argnums=1))(v64, jnp.asarray(x64))
        assert grad.dtype == jnp.float64
        grad = np.asarray(grad)
    assert _max_rel_err(grad, ref_grad) < 1e-8
    # pixels clamped away (beyond [-1, 1]) get no gradient, as under torch.clamp
    assert np.all(np.asarray(grad)[np.abs(x) > 1] == 0) and np.abs(grad).max() > 0


@pytest.mark.slow
def test_full_width_resnet50_matches_pytorch(tmp_path):
    torch = pytest.importorskip("torch", reason="the reference needs torch==2.13.0 (CPU)")
    net = _checkpoint(torch, tmp_path / "cifar_l2_1_0.pt", wm=1.0, seed=1)
    assert sum(p.numel() for p in net.model.parameters()) > 23_000_000  # ResNet-50
    out = robustness.import_checkpoint(tmp_path / "cifar_l2_1_0.pt", str(tmp_path / "r.npz"))
    apply_fn, variables = _load(out)
    x = _images(2, seed=1)
    with torch.no_grad():
        ref = net(torch.from_numpy((x.transpose(0, 3, 1, 2) + 1) / 2)).numpy()
    assert _max_rel_err(jax.jit(apply_fn)(variables, jnp.asarray(x)), ref) < 1e-4


def test_other_checkpoints_and_images_are_clear_errors(tmp_path):
    torch = pytest.importorskip("torch", reason="the reference needs torch==2.13.0 (CPU)")
    net = _checkpoint(torch, tmp_path / "c.pt", wm=0.125)
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    model, norm = robustness.classifier_state_dict({"model": sd}, "c.pt")
    basic = {k: v for k, v in model.items() if ".conv3." not in k}
    with pytest.raises(DataError, match="Bottleneck ResNet-50"):
        robustness.convert_state_dict(basic, norm, "resnet18.pt")
    shallow = {k: v for k, v in model.items() if not k.startswith("layer3.5.")}
    with pytest.raises(DataError, match=r"\(3, 4, 5, 3\)"):
        robustness.convert_state_dict(shallow, norm, "c.pt")
    with pytest.raises(DataError, match="no 'model"):
        robustness.classifier_state_dict({"model": {"fc.weight": np.zeros(3)}}, "other.pt")
    net_, variables = robustness.convert_state_dict(model, norm, "c.pt")
    with pytest.raises(DataError, match="32×32"):
        net_.apply(variables, jnp.zeros((1, 16, 16, 3)))
    # a file that is not a converted ResNet, read as one
    cnn = tmp_path / "cnn.npz"
    np.savez(cnn, **{"logits/kernel": np.zeros((4, 10))})
    with pytest.raises(DataError, match="--from=robustness"):
        _load(str(cnn))
    config = configlib.load_config(configs("cifar10.py:smoke"))
    config.classifier.name = robust_resnet.NAME
    with pytest.raises(ConfigError, match="imported, not trained"):
        classifier_mode(config, str(tmp_path / "wd"))


def _main(*args):
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env(devices=1),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_conditional_cli_flows_with_the_imported_classifier(smoke_run, tmp_path):
    """Converted and used through the command lines the README gives, on the CIFAR-10 smoke
    run: the samples are those of the flow guided by this classifier."""
    torch = pytest.importorskip("torch", reason="the reference needs torch==2.13.0 (CPU)")
    # LR-KL, the pairing the paper's class-conditional flows use (the LSIF smoke run's r can
    # be negative, and its guided flow diverges)
    config, wd = copy_run(smoke_run("cifar10.py:lr-kl"), tmp_path)
    _checkpoint(torch, tmp_path / "cifar_l2_1_0.pt", wm=0.125)
    out = str(tmp_path / "robust.npz")
    proc = _main("fdrl_jax.convert", "--from=robustness", str(tmp_path / "cifar_l2_1_0.pt"), out)
    assert proc.returncode == 0, proc.stderr[-3000:]

    config.classifier.name, config.conditional.num_samples = robust_resnet.NAME, 2
    config.classifier.path = str(tmp_path / "none.npz")
    with pytest.raises(MissingFileError, match="--from=robustness"):
        conditional_mode(config, wd)
    flags = [
        f"--config={configs('cifar10.py:lr-kl,smoke')}",
        f"--workdir={wd}",
        "--mode=conditional",
    ]
    # Two flow steps: this smoke run's guided flow is chaotic (weights scaled by 1 + 1e-6 move
    # its samples by 1.2 after four steps), so two processes' rounding agrees over a few only.
    steps = 2
    flags += ["--config.classifier.name=robust_resnet50", "--config.conditional.num_samples=2"]
    flags += [f"--config.conditional.num_steps={steps}"]
    proc = _main("fdrl_jax.main", *flags, f"--config.classifier.path={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]

    metrics = json.load(open(os.path.join(wd, "eval", "conditional", "metrics.json")))
    assert sorted(metrics["per_label"], key=int) == [str(y) for y in range(10)]
    assert metrics["phi"] == 0.1 and metrics["flow_steps"] == steps
    # The same flow in-process with the imported classifier gives the CLI's samples; the
    # estimator's own flow (no classifier) gives others.
    apply_fn, variables = _load(out)
    exp, state = restore_for_inference(config, wd)
    with np.load(os.path.join(wd, "eval", "conditional", "samples_label7.npz")) as z:
        cli_samples = z["samples"]
    key = jax.random.fold_in(jax.random.PRNGKey(config.conditional.seed), 7)
    guided = conditional_sampler(exp, apply_fn, 0.1, num_steps=steps)
    ours = guided((state.ema_variables, variables), key, 2, labels=np.full((2,), 7, np.int32))
    np.testing.assert_allclose(ours, cli_samples, atol=1e-4)
    unguided = Sampler(exp, num_steps=steps)(state.ema_variables, key, 2)
    assert not np.allclose(unguided, cli_samples, atol=1e-4)
