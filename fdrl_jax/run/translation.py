"""`--mode=translate`: unpaired image-to-image translation (paper Sec. 6.5) with the run's
estimator: source images flowed toward the target domain."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fdrl_jax import flow_lib, parallel
from fdrl_jax import translate as translate_lib
from fdrl_jax.data import load_image_set, to_uint8
from fdrl_jax.errors import DataError
from fdrl_jax.evaluation import features
from fdrl_jax.evaluation.fid import fid_from_images
from fdrl_jax.run import plotting
from fdrl_jax.run import workdir as workdir_lib
from fdrl_jax.run.checkpoints import restore_for_inference


def translate(config, workdir: str) -> dict:
    """Translate `translate.input` (a folder or .npz of source images;
    "" = the dataset prior's own images) with the latest checkpoint's EMA params. Writes
    eval/translate/translated.npz (`source`, `translated` floats, uint8 `images`),
    before_after.png (rows of sources, each above its translations) and translate.json (moved
    distance, `content_kept`, and the FID against `translate.target` when given)."""
    t = config.translate
    feature_fn = None
    if t.target:  # fail before the work if FID cannot be computed
        feature_fn = features.make_inception_feature_fn(weights_path=t.fid_weights or None)
    exp, state = restore_for_inference(config, workdir)
    if config.prior.name != "dataset":
        logging.warning(
            "This run's prior is %r, not 'dataset': the estimator was not trained to flow "
            "source images, so the translation may be poor.",
            config.prior.name,
        )
    source_cfg = config.prior.source if config.prior.name == "dataset" else config.data
    images = load_image_set(source_cfg, t.input, t.key)
    if t.num_images:
        images = images[: t.num_images]
    if tuple(images.shape[1:]) != exp.shape:
        raise DataError(
            f"Source images of shape {tuple(images.shape[1:])} do not match the data's "
            f"{exp.shape}; set prior.source.size / resize / channels to match `data`."
        )
    # the flow length is an argument, not a constant of the program (see flow_lib.flow)
    potential_fn = jax.jit(
        lambda v, x0, key, steps: translate_lib.translate(
            flow_lib.make_potential(exp.apply_fn, v, exp.fprime),
            x0,
            key,
            steps,
            config.flow.eta,
            config.flow.nu,
            clip_output=True,
        )
    )
    key = jax.random.PRNGKey(t.seed)
    mesh = parallel.make_mesh()
    flip = bool(source_cfg.get("flip", True))
    sources, outputs = [], []
    for i, start in enumerate(range(0, len(images), t.batch_size)):
        k_flip, k_flow = jax.random.split(jax.random.fold_in(key, i))
        x0 = translate_lib.prepare_source(images[start : start + t.batch_size], k_flip, flip)
        sources.append(np.asarray(x0))
        # Shard the batch over the devices (padded to a multiple of their count; the flow's
        # noise for the first rows does not depend on the padding).
        m = x0.shape[0]
        pad = -(-m // mesh.size) * mesh.size - m
        x0 = jnp.concatenate([x0, jnp.repeat(x0[-1:], pad, axis=0)]) if pad else x0
        x0 = jax.device_put(x0, parallel.batch_sharded(mesh))
        steps = np.int32(t.num_steps)
        out = parallel.to_host(potential_fn(state.ema_variables, x0, k_flow, steps))
        outputs.append(np.asarray(out)[:m])
    source, translated = np.concatenate(sources), np.concatenate(outputs)
    n = len(source)
    result = {
        "step": int(parallel.to_host(state.step)),
        "num_images": n,
        "num_steps": t.num_steps,
        "mean_l2_moved": float(
            np.mean(np.linalg.norm((translated - source).reshape(n, -1), axis=1))
        ),
        "content_kept": translate_lib.content_kept(source, translated, t.seed),
    }
    if feature_fn is not None:
        target = np.asarray(load_image_set(config.data, t.target))
        result["fid"] = fid_from_images(to_uint8(translated), target, feature_fn, batch_size=50)
        result["num_target_images"] = len(target)
    out = workdir_lib.write_results(os.path.join(workdir, "eval", "translate"), "translate", result)
    if parallel.is_main_process():
        workdir_lib.save_npz(
            os.path.join(out, "translated.npz"),
            source=source,
            translated=translated,
            images=to_uint8(translated),
            step=result["step"],
        )
        g = min(t.grid_size, n)
        plotting.save_image_grid(
            translate_lib.pairs_grid(source[:g], translated[:g], min(8, g)),
            os.path.join(out, "before_after.png"),
            ncol=min(8, g),
        )
    return result
