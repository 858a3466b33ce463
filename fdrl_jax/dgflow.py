"""DGflow (docs/algorithm.md §12): refine samples of any generator with a discriminator's
density ratio.

A discriminator logit d(x) ≈ log(p_data(x) / p_gen(x)) is a density-ratio estimator with
log r = −d (r = p_gen / p_data, the ratio FDRL's flow reads). So DGflow is FDRL's flow with the
potential f'(e^{−d(x)}), computed with the same log-ratio f' functions:

    KL:   ∇ f' = −∇d              (s(d) = 1)
    JS:   ∇ f' = −σ(d) ∇d         (s(d) = 1 / (1 + e^{−d}))
    logD: ∇ f' = −σ(−d) ∇d        (s(d) = 1 / (1 + e^{d}))

and the update x ← x + η s(d) ∇d + √(2ηγ) ξ is `flows.flow` with ν = √(2ηγ) (γ = 0: the
deterministic variant). Latent-space refinement (DGflow Algorithm 1) flows z with the potential
z ↦ f'(e^{−d(G(z))}).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from fdrl_jax import divergences, flows, loop
from fdrl_jax.errors import ConfigError

Array = jax.Array
REFINE_DIVERGENCES = ("kl", "js", "logd")
# Defaults of `refine` and of the config's `refine` section (measured on the 2D mixtures,
# benchmarks/RESULTS.md); DGflow's CIFAR-10 setting is η = 0.1, γ = 0.01.
DEFAULT_NUM_STEPS, DEFAULT_ETA, DEFAULT_GAMMA = 25, 0.01, 0.0


def _fprime(divergence: str) -> Callable[[Array], Array]:
    if divergence not in REFINE_DIVERGENCES:
        raise ConfigError(
            f"DGflow refines with a log-ratio f-divergence, one of "
            f"{list(REFINE_DIVERGENCES)}; got {divergence!r}."
        )
    return divergences.get_fprime(divergence)


def data_potential(logit_fn: Callable[[Array], Array], divergence: str) -> flows.Potential:
    """x ↦ f'(r(x)) with log r = −d(x): refine samples in data space."""
    fprime = _fprime(divergence)
    return lambda x: fprime(-logit_fn(x))


def latent_potential(
    logit_fn: Callable[[Array], Array], generator: Callable[[Array], Array], divergence: str
) -> flows.Potential:
    """z ↦ f'(r(G(z))) with log r = −d(G(z)): refine latents of a generator G."""
    fprime = _fprime(divergence)
    return lambda z: fprime(-logit_fn(generator(z)))


def refine(
    potential: flows.Potential,
    x0: Array,
    key: Array,
    num_steps: int = DEFAULT_NUM_STEPS,
    eta: float = DEFAULT_ETA,
    gamma: float = DEFAULT_GAMMA,
) -> Array:
    """DGflow's update for `num_steps` steps: noise √(2ηγ) ξ (γ = 0: deterministic)."""
    if eta <= 0 or gamma < 0 or num_steps < 0:
        raise ConfigError(
            f"refine needs eta > 0, gamma >= 0, num_steps >= 0; got {eta}, {gamma}, {num_steps}"
        )
    return flows.flow(potential, x0, key, num_steps, eta, math.sqrt(2.0 * eta * gamma))


def corrected_logit(
    logit_fn: Callable[[Array], Array], corrector_fn: Callable[[Array], Array]
) -> Callable[[Array], Array]:
    """d + c: a discriminator for generator A, corrected to refine generator B's samples
    (c ≈ log(p_A / p_B), see `fit_corrector`)."""
    return lambda x: logit_fn(x) + corrector_fn(x)


def fit_corrector(
    apply_fn: Callable,
    params,
    samples_a: Array,
    samples_b: Array,
    key: Array,
    num_steps: int = 500,
    lr: float = 1e-3,
    batch_size: int = 256,
):
    """Fit c ≈ log(p_A / p_B) by logistic regression, A labelled 1 and B 0 (DGflow Sec. 3.2).

    `params` initialises c: start from the discriminator's params to fine-tune it, as DGflow
    does, or from fresh ones. Returns the fitted params.
    """
    tx = optax.adam(lr)

    def loss(p, xa, xb):  # the LR Bregman loss: the same BCE with log r = c
        return divergences.lr_loss(apply_fn(p, xa), apply_fn(p, xb))

    @jax.jit
    def step(carry, i):
        p, opt = carry
        ka, kb = jax.random.split(jax.random.fold_in(key, i))
        xa = samples_a[jax.random.randint(ka, (batch_size,), 0, samples_a.shape[0])]
        xb = samples_b[jax.random.randint(kb, (batch_size,), 0, samples_b.shape[0])]
        value, g = jax.value_and_grad(loss)(p, xa, xb)
        updates, opt = tx.update(g, opt, p)
        return (optax.apply_updates(p, updates), opt), {"loss": value}

    params, _ = loop.fit(step, (params, tx.init(params)), num_steps, name="corrector")
    return params


def mixture_quality(x: Array, modes: Array, std: float) -> dict[str, float]:
    """DGflow's mixture metrics: the fraction of samples within 4 std of a mode
    ("high quality") and the number of modes that get any such sample."""
    d = jnp.linalg.norm(x[:, None, :] - modes[None, :, :], axis=-1)
    nearest, dist = jnp.argmin(d, axis=1), jnp.min(d, axis=1)
    good = dist <= 4.0 * std
    covered = jnp.zeros(modes.shape[0], bool).at[nearest].max(good)
    return {"high_quality_fraction": float(jnp.mean(good)), "modes_covered": int(covered.sum())}
