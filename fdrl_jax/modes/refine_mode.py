"""`--mode=refine`: DGflow refinement of another model's samples (`dgflow.py`)."""

from __future__ import annotations

import os

import jax
import numpy as np

from fdrl_jax import configlib, dgflow, flows, parallel
from fdrl_jax.data import build_data, is_image_data
from fdrl_jax.errors import DataError, MissingFileError
from fdrl_jax.evaluation.digits_metrics import digits_scores
from fdrl_jax.evaluation.toy_metrics import energy_distance
from fdrl_jax.gan import build_discriminator, build_generator
from fdrl_jax.interop.npz import load_params
from fdrl_jax.run import files, plotting
from fdrl_jax.run.checkpoints import restore_for_inference


def _load_samples(path: str, key: str):
    if not path or not files.exists(path):
        raise MissingFileError(
            f"No samples file {path!r}: set --config.refine.input to an .npz "
            "holding the samples to refine (e.g. --mode=gan's)."
        )
    z = files.load_npz(path)
    if key not in z:
        raise DataError(
            f"{path} has no array {key!r} (it holds {sorted(z)}); set --config.refine.key"
        )
    return np.asarray(z[key], np.float32)


def _variables(loaded: dict) -> dict:
    """A loaded params file as flax variables: files from `--mode=gan` hold {"params": ...,
    [stats]}; external ones may hold the params tree alone."""
    return loaded if "params" in loaded else {"params": loaded}


def refine_mode(config, workdir: str) -> dict:
    """Refine `refine.input`'s samples with a discriminator (DGflow) or with this run's FDRL
    estimator, in data space or (`refine.space = latent`) in the latent space of
    `refine.generator`; write eval/refined.npz, eval/refine.json and eval/refine.png. Runs on
    one device."""
    configlib.validate(config)
    r = config.refine
    data_source = build_data(config.data)
    # Inputs first: a wrong path fails before any checkpoint or params are read.
    if r.space == "latent":
        z = _load_samples(r.input, r.latent_key)
        generator = build_generator(config, data_source.shape)
        g_vars = _variables(load_params(r.generator))

        def decode(latents):
            return generator.apply(g_vars, latents)

        start = z
    else:
        x = _load_samples(r.input, r.key)
        if x.shape[1:] != tuple(data_source.shape):
            raise DataError(
                f"Samples of shape {x.shape[1:]} do not match the data's "
                f"{tuple(data_source.shape)} (config field `data`)."
            )
        start, decode = x, None
    if r.source == "estimator":
        exp, state = restore_for_inference(config, workdir)
        potential = flows.make_potential(exp.apply_fn, state.ema_variables, exp.fprime)
    else:
        model = build_discriminator(config)
        variables = _variables(load_params(r.discriminator))
        potential = dgflow.data_potential(lambda y: model.apply(variables, y), r.divergence)

    if decode is None:
        flow_potential = potential
    else:

        def flow_potential(latents):  # DGflow Algorithm 1: the potential of G(z)
            return potential(decode(latents))

    moved = jax.jit(lambda s, k: dgflow.refine(flow_potential, s, k, r.num_steps, r.eta, r.gamma))(
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
        result["digits_before"], result["digits_after"] = digits_scores(x), digits_scores(refined)
    arrays = {"before": x, "after": refined}
    if decode is not None:
        arrays.update(latents_before=np.asarray(start), latents_after=np.asarray(moved))
    out = files.write_results(os.path.join(workdir, "eval"), "refine", result)
    if not parallel.is_main_process():
        return result
    files.save_npz(os.path.join(out, "refined.npz"), **arrays)
    if is_image_data(data_source):
        n = min(len(x), 32)  # rows of 8: before, then after
        pairs = np.concatenate([x[:n], refined[:n]])
        plotting.save_image_grid(pairs, os.path.join(out, "refine.png"), ncol=8)
    else:
        plotting.panels(
            [("before", x), (f"refined ({r.num_steps} steps)", refined), ("data", data)],
            os.path.join(out, "refine.png"),
        )
    return result
