"""DGflow (`dgflow.py`): its update, noise and latent refinement, the corrector, a refined GAN;
and `--mode=gan` / `--mode=refine` end to end."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import configs

from fdrl_jax import configlib, dgflow, gan
from fdrl_jax.data import toy
from fdrl_jax.interop import npz
from fdrl_jax.models import MLP
from fdrl_jax.modes.gan_mode import gan_mode
from fdrl_jax.modes.refine_mode import refine_mode
from fdrl_jax.modes.train_mode import train_mode

M = jnp.array([1.0, -0.5])


def _logit(x):  # an analytic discriminator: d(x) = −½|x − M|² + 0.3
    return -0.5 * jnp.sum((x - M) ** 2, axis=-1) + 0.3


@pytest.mark.parametrize(
    "div,s",
    [
        ("kl", lambda d: jnp.ones_like(d)),
        ("js", lambda d: 1 / (1 + jnp.exp(-d))),
        ("logd", lambda d: 1 / (1 + jnp.exp(d))),
    ],
)
def test_refine_step_is_dgflows_update(div, s):
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
    out = dgflow.refine(
        dgflow.data_potential(_logit, div), x, jax.random.PRNGKey(1), 1, eta=0.1, gamma=0.0
    )
    grad_d = -(x - M)  # ∇d
    np.testing.assert_allclose(out, x + 0.1 * s(_logit(x))[:, None] * grad_d, rtol=1e-5, atol=1e-6)


def test_refine_noise_is_sqrt_2_eta_gamma():
    x = jnp.zeros((20_000, 2))
    out = dgflow.refine(
        lambda y: jnp.zeros(y.shape[0]), x, jax.random.PRNGKey(0), 1, eta=0.1, gamma=0.05
    )
    np.testing.assert_allclose(np.std(np.asarray(out)), np.sqrt(2 * 0.1 * 0.05), rtol=0.02)


def test_latent_refinement_moves_generated_samples_to_the_data():
    generator = lambda z: 2.0 * z + 3.0  # noqa: E731
    z = jax.random.normal(jax.random.PRNGKey(0), (512, 2))
    zk = dgflow.refine(
        dgflow.latent_potential(_logit, generator, "kl"),
        z,
        jax.random.PRNGKey(1),
        50,
        eta=0.05,
        gamma=0.0,
    )
    before = np.linalg.norm(np.asarray(generator(z)) - np.asarray(M), axis=1).mean()
    after = np.linalg.norm(np.asarray(generator(zk)) - np.asarray(M), axis=1).mean()
    assert after < 0.1 * before


def test_corrector_learns_the_log_ratio_of_two_generators():
    key = jax.random.PRNGKey(0)
    a = jax.random.normal(key, (20_000, 2)) + jnp.array([0.5, 0.0])
    b = jax.random.normal(jax.random.fold_in(key, 1), (20_000, 2))
    net = MLP()
    params = net.init(key, jnp.zeros((1, 2)))["params"]
    apply = lambda p, x: net.apply({"params": p}, x)  # noqa: E731
    params = dgflow.fit_corrector(apply, params, a, b, jax.random.PRNGKey(2), num_steps=800)
    x = jax.random.normal(jax.random.PRNGKey(3), (2000, 2))
    true = 0.5 * x[:, 0] - 0.125  # log N(x; (0.5, 0), I) − log N(x; 0, I)
    assert float(jnp.mean(jnp.abs(apply(params, x) - true))) < 0.1
    # A discriminator for A, corrected by c, is a discriminator for B: d + c.
    corrected = dgflow.corrected_logit(lambda y: 2 * y[:, 0], lambda y: apply(params, y))
    np.testing.assert_allclose(corrected(x), 2 * x[:, 0] + apply(params, x), rtol=1e-6)


def test_unknown_refinement_divergence_is_a_clear_error():
    with pytest.raises(ValueError, match="log-ratio f-divergence"):
        dgflow.data_potential(_logit, "chi2")


def gan_and_refine(workdir: str, seed: int = 0, **gan_fields) -> dict:
    """`--mode=gan` then `--mode=refine` (KL, its own discriminator) on 25 Gaussians with the
    shipped settings, as the README's commands run them; `gan_fields` override `gan.*`.
    Returns refine.json plus DGflow's mixture metrics before and after."""
    config = configlib.load_config(configs("gaussians25.py"))
    config.seed = seed
    config.gan.update(gan_fields)
    config.refine.input = gan_mode(config, workdir)
    config.refine.discriminator = os.path.join(workdir, "gan", "discriminator.npz")
    config.refine.divergence = "kl"
    result = refine_mode(config, workdir)
    modes, std = jnp.asarray(toy.TOY_MODES["25gaussians"]()), toy.TOY_MODE_STD["25gaussians"]
    with np.load(os.path.join(workdir, "eval", "refined.npz")) as z:
        for when in ("before", "after"):
            result[f"quality_{when}"] = dgflow.mixture_quality(jnp.asarray(z[when]), modes, std)
    before, after = result["energy_distance_before"], result["energy_distance_after"]
    result["gain"] = (before - after) / before
    return result


@pytest.fixture(scope="module")
def refined_25_gaussians(tmp_path_factory) -> dict:
    return gan_and_refine(str(tmp_path_factory.mktemp("gan25")))


def test_the_shipped_gan_trains_a_base_model_near_the_25_gaussians(refined_25_gaussians):
    """`--mode=gan` at the shipped settings. Seeds 0-9 (`benchmarks/gan_margin.py`): energy
    distance 0.009-0.026; with the FDRL estimator's (torch) initialisation on the
    discriminator 0.006-0.48, and 0.22 at this seed."""
    assert refined_25_gaussians["energy_distance_before"] < 0.05


def test_dgflow_refinement_improves_the_shipped_gan(refined_25_gaussians):
    """KL refinement with the GAN's own discriminator (25 steps, η = 0.01). Seeds 0-9: the
    share of samples within 4 std of a mode rises 1.9-5.7× (energy distance 0-46% lower);
    with the torch-initialised discriminator at this seed it falls (0.056 -> 0.051)."""
    r = refined_25_gaussians
    before = r["quality_before"]["high_quality_fraction"]
    after = r["quality_after"]["high_quality_fraction"]
    assert after > 1.5 * before, (before, after)
    assert r["energy_distance_after"] <= r["energy_distance_before"]


@pytest.mark.slow
def test_gan_and_refine_modes_end_to_end(tmp_path):
    import json

    config = configlib.load_config(configs("gaussians8.py:lr-kl,smoke"))
    wd = str(tmp_path)
    samples = gan_mode(config, wd)
    config.refine.input = samples
    config.refine.discriminator = os.path.join(wd, "gan", "discriminator.npz")
    result = refine_mode(config, wd)
    assert result["num_samples"] == 256 and result["source"] == "discriminator"
    with np.load(os.path.join(wd, "eval", "refined.npz")) as z:
        assert z["before"].shape == z["after"].shape == (256, 2)
        assert not np.allclose(z["before"], z["after"])
    assert json.load(open(os.path.join(wd, "eval", "refine.json")))["num_steps"] == 25
    # A trained FDRL estimator refines the same samples.
    train_mode(config, wd)
    config.refine.source = "estimator"
    assert refine_mode(config, wd)["source"] == "estimator"


def test_refine_input_errors(tmp_path):
    config = configlib.load_config(configs("gaussians8.py:smoke"))
    config.refine.input = str(tmp_path / "none.npz")
    with pytest.raises(FileNotFoundError, match="refine.input"):
        refine_mode(config, str(tmp_path))
    np.savez(tmp_path / "x.npz", other=np.zeros((4, 2)))
    config.refine.input = str(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="refine.key"):
        refine_mode(config, str(tmp_path))
    np.savez(tmp_path / "y.npz", samples=np.zeros((4, 2)))
    config.refine.input = str(tmp_path / "y.npz")
    config.refine.discriminator = str(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match="params file"):
        refine_mode(config, str(tmp_path))


@pytest.mark.slow
def test_image_gan_with_spectral_norm_and_latent_space_refinement(tmp_path):
    config = configlib.load_config(configs("digits.py:smoke"))
    config.gan.spectral_norm, config.gan.num_steps, config.gan.latent_dim = True, 20, 8
    wd = str(tmp_path)
    samples = gan_mode(config, wd)
    disc = npz.load_params(os.path.join(wd, "gan", "discriminator.npz"))
    assert set(disc) == {"params", "batch_stats"}  # spectral norm's state is saved with it
    with np.load(samples) as z:
        assert z["samples"].shape == (config.gan.num_samples, 8, 8, 1)
        assert np.abs(z["samples"]).max() <= 1.0  # tanh output for images
    config.refine.update(
        input=samples,
        space="latent",
        generator=os.path.join(wd, "gan", "generator.npz"),
        discriminator=os.path.join(wd, "gan", "discriminator.npz"),
        num_steps=5,
    )
    result = refine_mode(config, wd)
    assert result["space"] == "latent" and "mean_max_prob" in result["digits_after"]
    with np.load(os.path.join(wd, "eval", "refined.npz")) as z:
        moved = np.abs(z["latents_after"] - z["latents_before"]).max()
        assert moved > 0 and z["after"].shape == z["before"].shape
        generator = gan.build_generator(config, (8, 8, 1))
        g = npz.load_params(config.refine.generator)
        decoded = generator.apply({"params": g}, z["latents_after"])
        np.testing.assert_allclose(decoded, z["after"], atol=1e-5)  # after = G(refined z)
    assert os.path.exists(os.path.join(wd, "eval", "refine.png"))
