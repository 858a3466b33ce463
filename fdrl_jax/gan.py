"""A small GAN trainer (non-saturating loss), to get a base generator offline for DGflow."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from fdrl_jax import loop
from fdrl_jax.models import MLP, build_model, converge_spectral_norms

Array = jax.Array


class MLPGenerator(nn.Module):
    """z (B, latent) -> x (B, out_dim), or (B, *out_shape): LeakyReLU(0.2) MLP; `tanh` bounds
    the output to [-1, 1] (images)."""

    out_dim: int = 2
    hidden: int = 128
    num_hidden_layers: int = 3
    tanh: bool = False
    out_shape: tuple[int, ...] | None = None

    @nn.compact
    def __call__(self, z: Array) -> Array:
        h = z
        for _ in range(self.num_hidden_layers):
            h = nn.leaky_relu(nn.Dense(self.hidden)(h), 0.2)
        out = nn.Dense(self.out_dim)(h)
        out = jnp.tanh(out) if self.tanh else out
        return out if self.out_shape is None else out.reshape(out.shape[0], *self.out_shape)


@struct.dataclass
class GANState:
    step: Array
    g_params: object
    d_params: object
    g_opt: object
    d_opt: object
    # The discriminator's non-param collections (spectral norm's power-iteration state); {}
    # without spectral norm.
    d_stats: dict = struct.field(default_factory=dict)

    @property
    def d_variables(self) -> dict:
        """What `discriminator.apply` takes (and what `--mode=gan` saves)."""
        return {"params": self.d_params, **self.d_stats}


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    sample_data: Callable[[Array, int], Array],
    key: Array,
    *,
    latent_dim: int,
    num_steps: int,
    batch_size: int = 256,
    lr: float = 2e-4,
    b1: float = 0.5,
) -> GANState:
    """Alternate one discriminator and one generator Adam step, `num_steps` times.

    The discriminator's logit d(x) estimates log(p_data / p_gen) (data labelled 1), which is
    what `dgflow` refines with. Any Flax generator / discriminator (a logit per sample) works;
    a discriminator with state collections (spectral norm) gets one `update_stats=True` pass
    per step before its loss.
    """
    k_g, k_d, k_loop = jax.random.split(key, 3)
    g_params = generator.init(k_g, jnp.zeros((1, latent_dim)))["params"]
    x_shape = jax.eval_shape(
        lambda: generator.apply({"params": g_params}, jnp.zeros((1, latent_dim)))
    ).shape
    d_vars = converge_spectral_norms(dict(discriminator.init(k_d, jnp.zeros(x_shape))))
    d_params = d_vars.pop("params")
    tx = optax.adam(lr, b1=b1)
    state = GANState(
        jnp.zeros((), jnp.int32), g_params, d_params, tx.init(g_params), tx.init(d_params), d_vars
    )

    def gen(p, z):
        return generator.apply({"params": p}, z)

    def disc(p, stats, x):
        return discriminator.apply({"params": p, **stats}, x)

    @jax.jit
    def step(s: GANState, _) -> tuple[GANState, dict]:
        k = jax.random.fold_in(k_loop, s.step)
        k_x, k_z1, k_z2 = jax.random.split(k, 3)
        x = sample_data(k_x, batch_size).reshape(batch_size, *x_shape[1:])
        fake = gen(s.g_params, jax.random.normal(k_z1, (batch_size, latent_dim)))
        stats = s.d_stats
        if stats:
            _, stats = discriminator.apply(
                {"params": s.d_params, **stats}, x[:1], update_stats=True, mutable=list(stats)
            )
            stats = dict(stats)

        def d_loss(p):  # data → 1, fake → 0
            return jnp.mean(jax.nn.softplus(-disc(p, stats, x))) + jnp.mean(
                jax.nn.softplus(disc(p, stats, fake))
            )

        g_d = jax.grad(d_loss)(s.d_params)
        upd, d_opt = tx.update(g_d, s.d_opt, s.d_params)
        d_params = optax.apply_updates(s.d_params, upd)

        def g_loss(p):  # non-saturating: maximise log D(G(z))
            z = jax.random.normal(k_z2, (batch_size, latent_dim))
            return jnp.mean(jax.nn.softplus(-disc(d_params, stats, gen(p, z))))

        g_g = jax.grad(g_loss)(s.g_params)
        upd, g_opt = tx.update(g_g, s.g_opt, s.g_params)
        new = GANState(
            s.step + 1, optax.apply_updates(s.g_params, upd), d_params, g_opt, d_opt, stats
        )
        return new, {}

    return loop.fit(step, state, num_steps, name="gan")


# The discriminator's initialisation (`gan.param_init`). The FDRL estimators start as PyTorch
# starts its layers (`model.param_init`, to match the reference); the GAN discriminator is not
# the reference's and trains a far better base model with Flax's (lecun-normal weights, zero
# biases) at the GAN's settings.
DISCRIMINATOR_INIT = "flax"


def default_discriminator() -> nn.Module:
    """The 2D estimator network (`models/mlp.py`) as a discriminator, initialised as
    `DISCRIMINATOR_INIT`."""
    return MLP(param_init=DISCRIMINATOR_INIT)


def build_generator(config, data_shape) -> MLPGenerator:
    """The MLP generator `--mode=gan` trains for `config`'s data (tanh for images)."""
    return MLPGenerator(
        out_dim=int(np.prod(data_shape)),
        hidden=config.gan.hidden,
        tanh=len(data_shape) == 3,
        out_shape=tuple(data_shape),
    )


def build_discriminator(config) -> nn.Module:
    """The config's estimator network as the discriminator, initialised as `gan.param_init`
    (spectrally normalised if `gan.spectral_norm`)."""
    model = build_model(config.model).clone(param_init=config.gan.param_init)
    return model.clone(spectral_norm=True) if config.gan.spectral_norm else model
