"""A config turned into the experiment's pieces (`experiment.py`): clear errors for invalid
configs and missing data, a data-dependent prior fitted to a point cloud, the fitted prior's
fingerprint, and bfloat16 passes that track float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import configlib, flows, trainer
from fdrl_jax.experiment import build_experiment, prior_fingerprint


def test_invalid_configs_are_clear_errors():
    cases = [
        ({"loss": "lsif", "divergence": "kl"}, "Invalid pairing"),
        ({"prior.name": "cauchy"}, "Unknown prior 'cauchy'"),
        ({"data.name": "moons"}, "Unknown dataset 'moons'"),
        ({"model.name": "vit"}, "Unknown model 'vit'"),
        ({"model.name": "resnet"}, "needs image data"),
        ({"flow.eta": -1.0}, "`flow.eta` must be a finite number > 0"),
        ({"train.ema_decay": 1.0}, r"`train.ema_decay` must be .* in \[0, 1\)"),
    ]
    for overrides, msg in cases:
        c = configlib.override(configlib.smoke(configlib.default_config()), overrides)
        with pytest.raises(ValueError, match=msg):
            build_experiment(c)


def test_a_missing_data_file_is_a_clear_error(smoke_config, tmp_path):
    smoke_config.data.name = "points"
    smoke_config.data.path = str(tmp_path / "nope.npy")
    with pytest.raises(FileNotFoundError, match="nope.npy.*does not exist"):
        build_experiment(smoke_config)


def test_a_point_cloud_gets_its_own_input_size_and_a_fitted_prior(smoke_config, tmp_path):
    pts = np.random.default_rng(0).normal(size=(300, 3)) * [1.0, 2.0, 0.5] + 3.0
    np.save(tmp_path / "cloud.npy", pts)
    smoke_config.data.name = "points"
    smoke_config.data.path = str(tmp_path / "cloud.npy")
    smoke_config.prior.name = "ddp"
    exp = build_experiment(smoke_config)
    np.testing.assert_allclose(exp.prior.mean, pts.mean(0), rtol=1e-5)
    state = trainer.initial_state(exp)
    assert state.params["Dense_0"]["kernel"].shape == (3, 64)  # the MLP takes D = 3 inputs
    state, metrics = trainer.make_train_step(exp)(state, exp.data)
    assert bool(metrics["ok"])


def test_the_input_path_does_not_change_the_fitted_priors_fingerprint(smoke_config):
    fingerprint = prior_fingerprint(smoke_config)
    smoke_config.data.pipeline, smoke_config.data.prefetch = "stream", 8
    smoke_config.data.tfds_data_dir = "/data/tfds"
    assert prior_fingerprint(smoke_config) == fingerprint
    smoke_config.data.flip = False
    assert prior_fingerprint(smoke_config) != fingerprint


def _image_config(precision: str):
    c = configlib.default_config()
    c.data.name, c.data.size, c.data.synthetic_count = "synthetic", 8, 32
    c.model.update(name="resnet", arch="", stem=8, stages=((8, 1, 1), (16, 1, 2)))
    c.train.batch_size, c.flow.num_steps, c.train.precision = 8, 10, precision
    c.prior.clip = True
    return c


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "resnet"])
def test_unit_ratio_start_puts_an_lsif_estimator_at_one_and_leaves_lr_alone(model):
    """`model.unit_ratio_start`: an estimator of r starts at r ≈ 1 (its output bias + 1, every
    other parameter as without it); an estimator of log r is the same network either way."""
    outputs = {}
    for loss, div in (("lsif", "chi2"), ("lr", "kl")):
        for start in (False, True):
            c = configlib.default_config()
            c.loss, c.divergence = loss, div
            c.model.unit_ratio_start = start
            if model == "resnet":
                c.data.name, c.data.image_size = "digits", 8
                c.model.name, c.model.arch = "resnet", ""
                c.model.stem, c.model.stages = 4, ((4, 1, 1),)
            exp = build_experiment(c)
            x = exp.prior.sample(jax.random.PRNGKey(0), 64)
            variables = exp.model.init(jax.random.PRNGKey(1), x)
            outputs[loss, start] = np.asarray(exp.model.apply(variables, x))
    np.testing.assert_allclose(outputs["lsif", True], outputs["lsif", False] + 1.0, atol=1e-5)
    np.testing.assert_array_equal(outputs["lr", True], outputs["lr", False])
    assert abs(outputs["lsif", False].mean()) < 0.5  # the paper's LSIF start: r ≈ 0


def test_bf16_and_float32_flows_agree_on_a_small_resnet():
    # Stated tolerances (bf16 keeps 8 mantissa bits): outputs within 2% of their spread, the
    # potential's input gradient within 10% (relative L2; measured 6.5% on this random net),
    # and the particles' displacement after 10 steps within 5% (measured 2.4%).
    e32, e16 = (
        build_experiment(_image_config("float32")),
        build_experiment(_image_config("bfloat16")),
    )
    variables = trainer.initial_state(e32).variables
    x0 = jnp.clip(jax.random.normal(jax.random.PRNGKey(0), (16, 8, 8, 3)), -1, 1)
    moved, grads = {}, {}
    for name, e in (("f32", e32), ("bf16", e16)):
        potential = flows.make_potential(e.apply_fn, variables, e.fprime)
        grads[name] = np.asarray(jax.jit(jax.grad(lambda x, p=potential: p(x).sum()))(x0))
        xk = flows.flow(potential, x0, jax.random.PRNGKey(1), 10, 1.0, 0.0)
        assert xk.dtype == jnp.float32
        moved[name] = np.asarray(xk - x0)
    rel = np.linalg.norm(grads["bf16"] - grads["f32"]) / np.linalg.norm(grads["f32"])
    assert rel < 0.10, rel
    assert np.linalg.norm(moved["f32"]) > 1.0  # the particles really moved
    rel = np.linalg.norm(moved["bf16"] - moved["f32"]) / np.linalg.norm(moved["f32"])
    assert rel < 0.05, rel
    out32 = np.asarray(jax.jit(e32.apply_fn)(variables, x0))
    out16 = np.asarray(jax.jit(e16.apply_fn)(variables, x0))
    assert np.abs(out16 - out32).max() < 0.02 * (np.ptp(out32) + 1e-6) + 1e-3
