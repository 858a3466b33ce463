"""Checkpoints of the reference PyTorch implementation into our runs, ours out to .npz and to
its layout (`python -m fdrl_jax.convert`).

The reference side is simulated in torch: our nets in its layout
(`interop.reference_nets`), trained a few Adam steps with an EMA shadow of the whole state dict
and saved with the same `torch.save` dict as its train_*.py; its prior is a pickled
MultivariateNormal fitted as its dataset_setup.py does. Needs CPU torch (CI installs it).
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from helpers import env

torch = pytest.importorskip("torch")

from fdrl_jax import algorithms, configlib, priors  # noqa: E402
from fdrl_jax.errors import ConfigError, DataError, WorkdirError  # noqa: E402
from fdrl_jax.interop import exported, reference_config, reference_nets, torch_files  # noqa: E402
from fdrl_jax.interop import reference_checkpoint as ref_ckpt  # noqa: E402
from fdrl_jax.models import ARCHS, build_model  # noqa: E402
from fdrl_jax.modes.sample_mode import sample_mode  # noqa: E402
from fdrl_jax.run import conversion  # noqa: E402
from fdrl_jax.run.checkpoints import restore_for_inference  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (32, 32, 3)


def reference_config_dict(**overrides) -> dict:
    """configs/cifar10.yaml of the reference, as its scripts store it in a checkpoint."""
    return {
        "dataset": "cifar10",
        "loss_function": "LSIF",
        "f_divergence": "Pearson",
        "eta": 3.0,
        "noise_factor": 0.01,
        "n_flow_steps": 100,
        "ema": True,
        "ema_rate": 0.998,
        "learning_rate": 1e-4,
        "scheduler_gamma": 0.1,
        "scheduler_steps": [80000, 90000],
        "img_size": 32,
        "model": "resnet",
        "spectral_norm": True,
        "self_attn": False,
        "n_epochs": 100000,
        "train_batch_size": 64,
        "device": [0, 1],
        **overrides,
    }


def train_like_the_reference(net, shape, ref, path, steps=3, data_parallel=False, seed=0):
    """A few iterations of the reference's loop (Adam, EMAHelper over the whole state dict,
    ExponentialLR stepped after `scheduler_steps`) and its torch.save; returns the EMA shadow.
    The nets stay in training mode, as the reference's: every forward runs one power
    iteration of each spectral norm."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=ref["learning_rate"], betas=[0.9, 0.999])
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, ref["scheduler_gamma"])
    shadow = {k: v.clone() for k, v in net.state_dict().items()}
    chw = (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape
    for i in range(steps):
        loss = net(torch.randn(2, *chw)).pow(2).mean() - net(torch.randn(2, *chw)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mu = ref["ema_rate"]
        for k, v in net.state_dict().items():
            shadow[k].data = (1.0 - mu) * v.data + mu * shadow[k].data
        if (i + 1) in ref["scheduler_steps"]:
            sched.step()
    model = net.state_dict()
    if data_parallel:  # the reference wraps the net in nn.DataParallel for a device list
        model = {"module." + k: v for k, v in model.items()}
    torch.save(
        {
            "step": steps - 1,
            "model": model,
            "optim": opt.state_dict(),
            "ema": shadow,
            "scheduler": sched.state_dict(),
            "config": ref,
        },
        path,
    )
    return shadow


def narrow(arch: str) -> dict:
    """The arch with channels / 16 (at least 8): the same stages, blocks, strides and
    attention, small enough for CI."""
    spec = ARCHS[arch]
    return {
        "stem": max(spec["stem"] // 16, 8),
        "stages": tuple((max(c // 16, 8), b, s) for c, b, s in spec["stages"]),
    }


def net_config(net: str, sn: bool):
    c = configlib.load_config(os.path.join(ROOT, "configs", "cifar10.py") + ":smoke")
    if net == "mlp":
        c.model.update({"name": "mlp", "hidden": 32, "num_hidden_layers": 3, "spectral_norm": sn})
        return c, (2,)
    c.model.update({"arch": net, "spectral_norm": sn, **narrow(net)})
    c.model.attention_after = ARCHS[net]["attention_after"]
    return c, SHAPE


def template_for(config, shape):
    tx, _ = algorithms.make_optimizer(config.optim.lr, config.optim.decay_steps)
    model = build_model(config.model)
    return (
        jax.eval_shape(
            lambda: algorithms.init_state(model, tx, jax.random.PRNGKey(0), jnp.zeros((1, *shape)))
        ),
        model,
        tx,
    )


def torch_out(net, x_nhwc: np.ndarray) -> np.ndarray:
    x = torch.tensor(x_nhwc if x_nhwc.ndim == 2 else np.transpose(x_nhwc, (0, 3, 1, 2)))
    with torch.no_grad():
        return net(x).reshape(-1).numpy()


def max_rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("sn", [False, True])
def test_parameter_order_is_the_reference_optimisers(arch, sn):
    """The order that numbers the reference's Adam state, from its state dict on import and
    from the names alone on export, is torch's `model.parameters()` order."""
    c, shape = net_config(arch, sn)
    net = reference_nets.build_reference_net(c.model, shape)
    names = [n for n, _ in net.named_parameters()]
    assert ref_ckpt.parameter_order(net.state_dict()) == names
    assert ref_ckpt.reference_parameter_order(names[::-1], c.model.attention_after) == names


NETS = [(n, sn) for n in ("mlp", *sorted(ARCHS)) for sn in (False, True)]


@pytest.mark.slow  # full-size nets in torch and JAX
@pytest.mark.parametrize("net,sn", NETS)
def test_imported_checkpoint_computes_what_the_torch_net_computes(net, sn, tmp_path):
    """For every net, with and without spectral norm: a checkpoint saved as the reference
    saves it (after some training, so the EMA differs from the weights and the spectral norms'
    vectors are not converged) imports into a train state whose live and EMA nets give the
    torch nets' outputs within 1e-4, with Adam's moments and the step."""
    config, shape = net_config(net, sn)
    ref_net = reference_nets.build_reference_net(config.model, shape)
    ref = reference_config_dict(spectral_norm=sn, scheduler_steps=[2, 90000])
    path = str(tmp_path / "ckpt.pt")
    shadow = train_like_the_reference(ref_net, shape, ref, path, data_parallel=net == "cifar10")
    ema_net = reference_nets.build_reference_net(config.model, shape)
    ema_net.load_state_dict(shadow)
    ckpt = ref_ckpt.parse_checkpoint(torch_files.load_checkpoint(path), path)
    template, model, _ = template_for(config, shape)
    state, _, adam_imported = conversion.reference_state(ckpt, template, config, path)
    assert adam_imported and int(state.step) == 3
    x = np.random.default_rng(1).uniform(-1, 1, (3, *shape)).astype(np.float32)
    # torch's first forward in training mode: one power iteration from the stored vectors
    expected_live, expected_ema = torch_out(ref_net, x), torch_out(ema_net, x)
    apply = jax.jit(model.apply)  # one compilation for both
    live = apply(state.variables, jnp.asarray(x))
    ema = apply(state.ema_variables, jnp.asarray(x))
    assert max_rel_err(live, expected_live) <= 1e-4
    assert max_rel_err(ema, expected_ema) <= 1e-4
    assert max_rel_err(ema, expected_live) > 1e-4  # the EMA is really another net
    # Adam's moments, parameter by parameter in the reference's order, in its layout again
    path_of = {name: p for p, name in conversion.state_dict.param_names(state.variables).items()}
    mu = traverse_util.flatten_dict(state.opt_state[0].mu)
    nu = traverse_util.flatten_dict(state.opt_state[0].nu)
    for i, name in enumerate(ref_ckpt.parameter_order(ckpt.model)):
        p = path_of[name]
        entry = ckpt.optim["state"][i]
        to_torch = conversion.state_dict.to_torch_layout
        np.testing.assert_array_equal(to_torch(mu[p], p[-1]), entry["exp_avg"])
        np.testing.assert_array_equal(to_torch(nu[p], p[-1]), entry["exp_avg_sq"])
    assert int(state.opt_state[0].count) == 3 and int(state.opt_state[1].count) == 3


@pytest.mark.slow
def test_next_adam_step_continues_the_references(tmp_path):
    """After import, one optimiser step with the same gradient gives torch's next weights: the
    moments, their count and the learning rate (decayed at step 2) all carried over."""
    config, shape = net_config("cat2dog", True)
    config.optim.decay_steps = (2, 90000)
    ref_net = reference_nets.build_reference_net(config.model, shape)
    ref = reference_config_dict(spectral_norm=True, self_attn=True, model="resnetshallow")
    ref["scheduler_steps"] = [2, 90000]
    path = str(tmp_path / "ckpt.pt")
    train_like_the_reference(ref_net, shape, ref, path)
    ckpt = ref_ckpt.parse_checkpoint(torch_files.load_checkpoint(path), path)
    template, _, tx = template_for(config, shape)
    state, warnings, _ = conversion.reference_state(ckpt, template, config, path)
    assert not [w for w in warnings if "learning rate" in w]
    # the same gradient on both sides: torch's, mapped like the weights
    opt = torch.optim.Adam(ref_net.parameters(), lr=1e-4, betas=[0.9, 0.999])
    opt.load_state_dict(torch.load(path)["optim"])
    loss = ref_net(torch.randn(4, 3, 32, 32)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    grad_sd = {k: v.numpy().copy() for k, v in ref_net.state_dict().items()}
    grad_sd.update({k: p.grad.numpy() for k, p in ref_net.named_parameters()})
    g = conversion.state_dict.from_state_dict(grad_sd, state.variables)["params"]
    opt.step()
    updates, _ = tx.update(g, state.opt_state, state.params)
    new = jax.tree.map(lambda p, u: p + u, state.params, updates)
    expected = conversion.state_dict.from_state_dict(
        {k: v.numpy() for k, v in ref_net.state_dict().items()}, state.variables
    )["params"]
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def _reference_prior(path, h=8, seed=0):
    """A prior fitted and pickled as the reference's dataset_setup.py does it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(200, 3, h, h, generator=g) * 2 - 1
    flat = x.view(len(x), -1)
    mean = flat.mean(0)
    centred = flat - mean
    cov = centred.t() @ centred / len(flat)
    dist = torch.distributions.MultivariateNormal(
        mean, covariance_matrix=cov + 1e-4 * torch.eye(len(mean))
    )
    torch.save(dist, path)
    return dist


def test_reference_prior_imports_as_the_same_draws_in_our_pixel_order(tmp_path):
    path = str(tmp_path / "cifar10_ddp.pt")
    dist = _reference_prior(path)
    arrays = torch_files.load_reference_prior(path)
    shape = ref_ckpt.reference_prior_shape(arrays["loc"].size, 8)
    assert shape == (8, 8, 3)
    prior = ref_ckpt.prior_from_reference(arrays, shape)
    eps = torch.randn(5, 192)
    theirs = (dist.loc + eps @ dist.scale_tril.T).reshape(5, 3, 8, 8).permute(0, 2, 3, 1)
    ours = (np.asarray(prior.mean) + eps.numpy() @ np.asarray(prior.chol).T).reshape(5, 8, 8, 3)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-5)
    # Σ reordered exactly, and back to the reference's order and factor bit for bit
    idx = ref_ckpt.chw_index(shape)
    cov = dist.covariance_matrix.double().numpy()[np.ix_(idx, idx)]
    np.testing.assert_allclose(priors.covariance_of(prior), cov, rtol=0, atol=1e-6)
    back = ref_ckpt.prior_to_reference(prior)
    np.testing.assert_array_equal(back["scale_tril"], arrays["scale_tril"])
    np.testing.assert_array_equal(back["loc"], arrays["loc"])
    with pytest.raises(DataError, match="3×H×H"):
        ref_ckpt.reference_prior_shape(100)


def test_our_fitted_priors_export_to_torch_distributions(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (300, 4, 4, 3)).astype(np.float32)
    for form in ("full", "lowrank"):
        prior = priors.fit_gaussian([x], form=form, rank=5)
        path = str(tmp_path / f"{form}_ddp.pt")
        torch_files.save_reference_prior(path, ref_ckpt.prior_to_reference(prior))
        dist = torch.load(path, weights_only=False)
        idx = ref_ckpt.chw_index((4, 4, 3))
        cov = dist.covariance_matrix.double().numpy()[np.ix_(idx, idx)]
        np.testing.assert_allclose(cov, priors.covariance_of(prior), rtol=0, atol=1e-5)
        back = ref_ckpt.prior_from_reference(torch_files.load_reference_prior(path), (4, 4, 3))
        np.testing.assert_allclose(priors.covariance_of(back), cov, rtol=0, atol=1e-5)


def test_config_differences_loss_is_an_error_the_rest_warnings():
    config, _ = net_config("cifar10", True)
    config.model.update({"stem": None, "stages": None})  # the full CIFAR-10 net
    errors, warnings = reference_config.compare(reference_config_dict(), config, SHAPE)
    assert not errors
    expected = ["flow.num_steps", "optim.decay_steps", "train.num_steps", "train.batch_size"]
    assert [w.split(":")[0] for w in warnings] == expected
    lr_kl = reference_config_dict(loss_function="LR", f_divergence="KL", ema_rate=0.999)
    errors, warnings = reference_config.compare(lr_kl, config, (64, 64, 3))
    assert "loss_function='LR'" in errors[0] and "lr-kl" in errors[0]
    text = " ".join(warnings)
    assert "divergence" in text and "train.ema_decay" in text and "img_size=32" in text
    errors, warnings = reference_config.compare(
        reference_config_dict(self_attn=True), config, SHAPE
    )
    assert any("attention_after=0" in w for w in warnings)


@pytest.mark.parametrize(
    "config_file,size,model,attention",
    [("cifar10.py", 32, "resnet", False), ("celeba64.py", 64, "resnet", False),
     ("cat2dog.py", 64, "resnetshallow", True), ("church128.py", 128, "resnet", False)],
)  # fmt: skip
def test_exported_config_builds_the_same_net_in_the_reference(config_file, size, model, attention):
    """Each image config exports to the reference config that selects the same net
    (its get_model: by img_size, and `model` at 64²), which imports back without warnings."""
    config = configlib.load_config(os.path.join(ROOT, "configs", config_file))
    ref, warnings = reference_config.to_reference(config, (size, size, 3), "data")
    assert not warnings
    assert (ref["img_size"], ref["model"], ref["self_attn"]) == (size, model, attention)
    assert reference_config.reference_net(ref) == reference_config.our_net(config.model)
    assert reference_config.compare(ref, config, (size, size, 3)) == ([], [])
    config.model.stages = ((8, 1, 2),)  # not a net the reference builds
    assert "another net" in reference_config.to_reference(config, (size, size, 3), "x")[1][0]


def test_files_that_are_not_reference_checkpoints_say_what_is_expected(tmp_path):
    path = str(tmp_path / "weights.pt")
    torch.save({"conv1.weight": torch.zeros(1)}, path)  # a bare state dict
    with pytest.raises(DataError, match=r"expected a dict with keys \['step', 'model', 'optim'"):
        ref_ckpt.parse_checkpoint(torch_files.load_checkpoint(path), path)
    torch.save({"step": 0, "model": {"a": 1}, "config": {}}, path)
    with pytest.raises(DataError, match="`model` should be a state dict"):
        ref_ckpt.parse_checkpoint(torch_files.load_checkpoint(path), path)
    with open(path, "wb") as f:
        f.write(b"not a pickle")
    with pytest.raises(DataError, match="could not be read"):
        torch_files.load_checkpoint(path)


def _cli(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "fdrl_jax.convert", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env(devices=1),
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_cli_import_then_sample_and_a_user_error(tmp_path):
    """The command the README gives, on a toy MLP checkpoint; then --mode=sample runs on the
    new work directory. A checkpoint trained with another loss exits 2 with the message
    alone."""
    config = configlib.load_config(os.path.join(ROOT, "configs", "swissroll.py:smoke"))
    shape = (2,)
    ref = reference_config_dict(dataset="swissroll", n_flow_steps=10, spectral_norm=False)
    ref.update(in_dim=2, hidden_dim=64, n_hidden_layers=3)
    for key in ("img_size", "model", "self_attn"):
        del ref[key]
    net = reference_nets.build_reference_net(config.model, shape)
    path = str(tmp_path / "swissroll_LSIF_Pearson.pt")
    train_like_the_reference(net, shape, ref, path)
    wd = str(tmp_path / "wd")
    spec = "--config=configs/swissroll.py:smoke"
    _cli("--from=reference", path, spec, f"--workdir={wd}")
    provenance = json.load(open(os.path.join(wd, "reference.json")))
    assert provenance["step"] == 3 and provenance["adam_state"] == "imported"
    assert provenance["reference_config"]["dataset"] == "swissroll"
    out = sample_mode(config, wd)
    with np.load(out) as z:
        assert z["samples"].shape == (config.sample.num_samples, 2) and int(z["step"]) == 3
        assert np.all(np.isfinite(z["samples"]))
    # (the other user errors are raised in-process in the tests above and below)
    bad = _cli("--from=reference", path, spec + ",lr-kl", f"--workdir={tmp_path}/x", check=False)
    assert bad.returncode == 2 and "loss_function='LSIF'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.fixture
def trained_run(smoke_run):
    """A run of ours: the CIFAR-10 smoke config (ResNet with spectral norm, fitted full DDP)."""
    make_config, wd = smoke_run("cifar10.py")  # read, not written
    config = make_config()
    return config, wd, restore_for_inference(config, wd)[1]


def _equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow  # trains a run first
def test_export_npz_round_trips_bit_equal(trained_run, tmp_path):
    config, wd, state = trained_run
    out = conversion.export_npz(config, wd, str(tmp_path / "run.npz"))
    loaded = exported.load_export(out)
    _equal(loaded.variables, state.ema_variables)
    assert loaded.step == int(state.step) and loaded.config["model"]["arch"] == "cifar10"
    exp, _ = restore_for_inference(config, wd)
    _equal(loaded.prior, exp.prior)
    assert loaded.prior.shape == exp.prior.shape
    with np.load(out) as z:  # numpy alone reads it, under our params' names
        assert "params/conv1/kernel" in z.files and "prior/chol" in z.files


@pytest.mark.slow
def test_export_to_the_reference_loads_in_torch_and_imports_back_bit_equal(trained_run, tmp_path):
    """The exported checkpoint loads into the torch net (every name and shape), computes
    our EMA net's outputs, and imports back into the same train state; the prior is the
    reference's pickled MultivariateNormal, in its pixel order."""
    config, wd, state = trained_run
    out = str(tmp_path / "cifar10_LSIF_Pearson.pt")
    conversion.export_reference(config, wd, out)
    ckpt = torch.load(out)  # weights_only: plain tensors and containers only
    assert set(ckpt) == set(ref_ckpt.EXPECTED_KEYS) and ckpt["step"] == int(state.step) - 1
    assert ckpt["config"]["img_size"] == 32 and ckpt["config"]["loss_function"] == "LSIF"
    net = reference_nets.build_reference_net(config.model, SHAPE)
    net.load_state_dict(ckpt["ema"])
    torch.optim.Adam(net.parameters()).load_state_dict(ckpt["optim"])
    x = np.random.default_rng(0).uniform(-1, 1, (2, *SHAPE)).astype(np.float32)
    exp, _ = restore_for_inference(config, wd)
    ours = exp.apply_fn(state.ema_variables, jnp.asarray(x))
    assert max_rel_err(ours, torch_out(net, x)) <= 1e-4
    dataset = conversion.reference_dataset(config)  # the smoke config's: synthetic images
    prior = torch_files.load_reference_prior(os.path.join(tmp_path, f"{dataset}_ddp.pt"))
    idx = ref_ckpt.chw_index(SHAPE)
    np.testing.assert_array_equal(prior["loc"][idx], np.asarray(exp.prior.mean))
    back = conversion.import_reference(config, str(tmp_path / "back"), out)
    _equal(back.params, state.params)
    _equal(back.ema_params, state.ema_params)
    _equal(back.opt_state, state.opt_state)
    assert int(back.step) == int(state.step)
    for a, b in zip(jax.tree.leaves(back.ema_stats), jax.tree.leaves(state.ema_stats), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(WorkdirError):
        conversion.import_reference(config, str(tmp_path / "back"), out)
    # with its prior: stored under this config's prior settings, so the modes use it (a refit
    # would give a lower-triangular factor; the imported one has its rows reordered)
    wd = str(tmp_path / "with_prior")
    prior_path = os.path.join(tmp_path, f"{dataset}_ddp.pt")
    conversion.import_reference(config, wd, out, prior=prior_path)
    exp2, _ = restore_for_inference(config, wd)
    assert np.any(np.triu(np.asarray(exp2.prior.chol), 1))
    np.testing.assert_array_equal(exp2.prior.mean, exp.prior.mean)
    np.testing.assert_allclose(
        priors.covariance_of(exp2.prior), priors.covariance_of(exp.prior), rtol=0, atol=1e-5
    )
    with pytest.raises(ConfigError, match="prior"):
        toy = configlib.load_config(os.path.join(ROOT, "configs", "swissroll.py:smoke"))
        conversion.import_reference(toy, str(tmp_path / "toy"), out, prior=out)
