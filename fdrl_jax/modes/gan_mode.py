"""`--mode=gan`: a small GAN on the config's data, as a base model for DGflow refinement."""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging

from fdrl_jax import configlib, parallel
from fdrl_jax.data import build_data
from fdrl_jax.gan import build_discriminator, build_generator, train_gan
from fdrl_jax.interop.npz import save_params
from fdrl_jax.run import files


def gan_mode(config, workdir: str) -> str:
    """Train a GAN (`gan.*`, the config's estimator network as the discriminator); write
    `<workdir>/gan/` with the generator and discriminator variables (.npz) and `samples.npz`
    (samples and their latents). Returns the samples' path. Runs on one device."""
    configlib.validate(config)
    data, g = build_data(config.data), config.gan
    generator, discriminator = build_generator(config, data.shape), build_discriminator(config)
    logging.info("Training a GAN for %d steps", g.num_steps)
    state = train_gan(
        generator,
        discriminator,
        data.sample,
        jax.random.PRNGKey(config.seed),
        latent_dim=g.latent_dim,
        num_steps=g.num_steps,
        batch_size=g.batch_size,
        lr=g.lr,
    )
    out = os.path.join(workdir, "gan")
    z = jax.random.normal(jax.random.PRNGKey(config.sample.seed), (g.num_samples, g.latent_dim))
    x = np.asarray(generator.apply({"params": state.g_params}, z))
    path = os.path.join(out, "samples.npz")
    if parallel.is_main_process():
        save_params(os.path.join(out, "generator.npz"), state.g_params)
        save_params(os.path.join(out, "discriminator.npz"), state.d_variables)
        files.save_npz(path, samples=x.reshape(g.num_samples, *data.shape), latents=np.asarray(z))
        logging.info("Wrote GAN params and %d samples to %s", g.num_samples, out)
    return path
