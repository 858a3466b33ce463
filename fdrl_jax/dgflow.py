"""DGflow (SPEC "DGflow"): refine samples of any generator with a discriminator's density ratio.

A discriminator logit d(x) ≈ log(p_data(x) / p_gen(x)) is a density-ratio estimator with
log r = −d (r = p_gen / p_data, the ratio FDRL's flow reads). So DGflow is FDRL's flow with the
potential f'(e^{−d(x)}), computed with the same log-ratio f' functions:

    KL:   ∇ f' = −∇d              (s(d) = 1)
    JS:   ∇ f' = −σ(d) ∇d         (s(d) = 1 / (1 + e^{−d}))
    logD: ∇ f' = −σ(−d) ∇d        (s(d) = 1 / (1 + e^{d}))

and the update x ← x + η s(d) ∇d + √(2ηγ) ξ is `flow.flow` with ν = √(2ηγ) (γ = 0: the
deterministic variant). Latent-space refinement (DGflow Algorithm 1) flows z with the potential
z ↦ f'(e^{−d(G(z))}).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from fdrl_jax import divergences
from fdrl_jax import flow as flow_lib

Array = jax.Array
REFINE_DIVERGENCES = ("kl", "js", "logd")


def _fprime(divergence: str) -> Callable[[Array], Array]:
    if divergence not in REFINE_DIVERGENCES:
        raise ValueError(
            f"DGflow refines with a log-ratio f-divergence, one of "
            f"{list(REFINE_DIVERGENCES)}; got {divergence!r}."
        )
    return divergences.get_fprime(divergence)


def data_potential(logit_fn: Callable[[Array], Array], divergence: str) -> flow_lib.Potential:
    """x ↦ f'(r(x)) with log r = −d(x): refine samples in data space."""
    fprime = _fprime(divergence)
    return lambda x: fprime(-logit_fn(x))


def latent_potential(
    logit_fn: Callable[[Array], Array], generator: Callable[[Array], Array], divergence: str
) -> flow_lib.Potential:
    """z ↦ f'(r(G(z))) with log r = −d(G(z)): refine latents of a generator G."""
    fprime = _fprime(divergence)
    return lambda z: fprime(-logit_fn(generator(z)))


def refine(
    potential: flow_lib.Potential,
    x0: Array,
    key: Array,
    num_steps: int = 25,
    eta: float = 0.1,
    gamma: float = 0.01,
) -> Array:
    """DGflow's update for `num_steps` steps: noise √(2ηγ) ξ (γ = 0: deterministic)."""
    if eta <= 0 or gamma < 0 or num_steps < 0:
        raise ValueError(
            f"refine needs eta > 0, gamma >= 0, num_steps >= 0; got {eta}, {gamma}, {num_steps}"
        )
    return flow_lib.flow(potential, x0, key, num_steps, eta, math.sqrt(2.0 * eta * gamma))


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
    def step(p, opt, k):
        ka, kb = jax.random.split(k)
        xa = samples_a[jax.random.randint(ka, (batch_size,), 0, samples_a.shape[0])]
        xb = samples_b[jax.random.randint(kb, (batch_size,), 0, samples_b.shape[0])]
        g = jax.grad(loss)(p, xa, xb)
        updates, opt = tx.update(g, opt, p)
        return optax.apply_updates(p, updates), opt

    opt = tx.init(params)
    for i in range(num_steps):
        params, opt = step(params, opt, jax.random.fold_in(key, i))
    return params


def mixture_quality(x: Array, modes: Array, std: float) -> dict[str, float]:
    """DGflow's mixture metrics: the fraction of samples within 4 std of a mode
    ("high quality") and the number of modes that get any such sample."""
    d = jnp.linalg.norm(x[:, None, :] - modes[None, :, :], axis=-1)
    nearest, dist = jnp.argmin(d, axis=1), jnp.min(d, axis=1)
    good = dist <= 4.0 * std
    covered = jnp.zeros(modes.shape[0], bool).at[nearest].max(good)
    return {"high_quality_fraction": float(jnp.mean(good)), "modes_covered": int(covered.sum())}


def _load_samples(path: str, key: str):
    import os

    import numpy as np

    if not path or not os.path.exists(path):
        raise FileNotFoundError(
            f"No samples file {path!r}: set --config.refine.input to an .npz "
            "holding the samples to refine (e.g. --mode=gan's)."
        )
    with np.load(path) as z:
        if key not in z.files:
            raise ValueError(
                f"{path} has no array {key!r} (it holds {z.files}); set --config.refine.key"
            )
        return np.asarray(z[key], np.float32)


def _variables(loaded: dict) -> dict:
    """A loaded params file as flax variables: files from `--mode=gan` hold {"params": ...,
    [stats]}; external ones may hold the params tree alone."""
    return loaded if "params" in loaded else {"params": loaded}


def run_refine(config, workdir: str) -> dict:
    """`--mode=refine`: refine `refine.input`'s samples with a discriminator (DGflow) or with
    this run's FDRL estimator, in data space or (`refine.space = latent`) in the latent space
    of `refine.generator`; write eval/refined.npz, eval/refine.json and a figure."""
    import json
    import os

    import numpy as np
    from absl import logging

    from fdrl_jax import checkpoints, configlib, plotting
    from fdrl_jax.data import build_data, is_image_data
    from fdrl_jax.evaluation import energy_distance
    from fdrl_jax.gan import build_discriminator, build_generator

    configlib.validate(config)
    r = config.refine
    data_source = build_data(config.data)
    # Inputs first: a wrong path fails before any checkpoint or params are read.
    if r.space == "latent":
        z = _load_samples(r.input, r.latent_key)
        generator = build_generator(config, data_source.shape)
        g_vars = _variables(checkpoints.load_params(r.generator))

        def decode(latents):
            return generator.apply(g_vars, latents)

        start = z
    else:
        x = _load_samples(r.input, r.key)
        if x.shape[1:] != tuple(data_source.shape):
            raise ValueError(
                f"Samples of shape {x.shape[1:]} do not match the data's "
                f"{tuple(data_source.shape)} (config field `data`)."
            )
        start, decode = x, None
    if r.source == "estimator":
        from fdrl_jax.train import restore_for_inference

        exp, state = restore_for_inference(config, workdir)
        potential = flow_lib.make_potential(exp.apply_fn, state.ema_variables, exp.fprime)
    else:
        model = build_discriminator(config)
        variables = _variables(checkpoints.load_params(r.discriminator))
        potential = data_potential(lambda y: model.apply(variables, y), r.divergence)

    if decode is None:
        flow_potential = potential
    else:

        def flow_potential(latents):  # DGflow Algorithm 1: the potential of G(z)
            return potential(decode(latents))

    moved = jax.jit(lambda s, k: refine(flow_potential, s, k, r.num_steps, r.eta, r.gamma))(
        start, jax.random.PRNGKey(r.seed)
    )
    if decode is None:
        x, refined = start, np.asarray(moved)
    else:
        x, refined = np.asarray(decode(start)), np.asarray(decode(moved))
    data = np.asarray(data_source.sample(jax.random.PRNGKey(config.eval.seed), len(x)))
    flat = [a.reshape(len(a), -1) for a in (x, refined, data)]
    result = {
        "num_samples": len(x),
        "source": r.source,
        "space": r.space,
        "num_steps": r.num_steps,
        "energy_distance_before": float(energy_distance(flat[0], flat[2])),
        "energy_distance_after": float(energy_distance(flat[1], flat[2])),
    }
    if config.data.name == "digits":
        from fdrl_jax.evaluation.digits_metrics import digits_scores

        result["digits_before"], result["digits_after"] = digits_scores(x), digits_scores(refined)
    out = os.path.join(workdir, "eval")
    os.makedirs(out, exist_ok=True)
    arrays = {"before": x, "after": refined}
    if decode is not None:
        arrays.update(latents_before=np.asarray(start), latents_after=np.asarray(moved))
    np.savez(os.path.join(out, "refined.npz"), **arrays)
    with open(os.path.join(out, "refine.json"), "w") as f:
        json.dump(result, f, indent=2)
    if is_image_data(data_source):
        n = min(len(x), 32)  # rows of 8: before, then after
        pairs = np.concatenate([x[:n], refined[:n]])
        plotting.save_image_grid(pairs, os.path.join(out, "refine.png"), ncol=8)
    else:
        plotting.panels(
            [("before", x), (f"refined ({r.num_steps} steps)", refined), ("data", data)],
            os.path.join(out, "refine.png"),
        )
    logging.info("refine: %s", json.dumps(result))
    return result
