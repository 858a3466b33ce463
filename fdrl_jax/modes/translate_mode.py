"""`--mode=translate`: unpaired image-to-image translation (paper Sec. 6.5) with the run's
estimator: source images flowed toward the target domain."""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging

from fdrl_jax import parallel
from fdrl_jax.data import load_image_set, to_uint8
from fdrl_jax.data.pairs import prepare_source
from fdrl_jax.errors import DataError
from fdrl_jax.evaluation import features
from fdrl_jax.evaluation.fid import fid_from_images
from fdrl_jax.evaluation.figures import pairs_grid
from fdrl_jax.evaluation.translation import content_kept
from fdrl_jax.run import files, plotting
from fdrl_jax.run.checkpoints import restore_for_inference
from fdrl_jax.sampler import Sampler


def translate_mode(config, workdir: str) -> dict:
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
    sampler = Sampler(exp, mesh=parallel.make_mesh(), num_steps=t.num_steps, clip_output=True)
    key = jax.random.PRNGKey(t.seed)
    flip = bool(source_cfg.get("flip", True))
    sources, outputs = [], []
    for i, start in enumerate(range(0, len(images), t.batch_size)):
        k_flip, k_flow = jax.random.split(jax.random.fold_in(key, i))
        x0 = np.asarray(prepare_source(images[start : start + t.batch_size], k_flip, flip))
        sources.append(x0)
        outputs.append(np.asarray(parallel.to_host(sampler.flow(state.ema_variables, x0, k_flow))))
    source, translated = np.concatenate(sources), np.concatenate(outputs)
    n = len(source)
    result = {
        "step": int(parallel.to_host(state.step)),
        "num_images": n,
        "num_steps": t.num_steps,
        "mean_l2_moved": float(
            np.mean(np.linalg.norm((translated - source).reshape(n, -1), axis=1))
        ),
        "content_kept": content_kept(source, translated, t.seed),
    }
    if feature_fn is not None:
        target = np.asarray(load_image_set(config.data, t.target))
        result["fid"] = fid_from_images(to_uint8(translated), target, feature_fn, batch_size=50)
        result["num_target_images"] = len(target)
    out = files.write_results(os.path.join(workdir, "eval", "translate"), "translate", result)
    if parallel.is_main_process():
        files.save_npz(
            os.path.join(out, "translated.npz"),
            source=source,
            translated=translated,
            images=to_uint8(translated),
            step=result["step"],
        )
        g = min(t.grid_size, n)
        plotting.save_image_grid(
            pairs_grid(source[:g], translated[:g], min(8, g)),
            os.path.join(out, "before_after.png"),
            ncol=min(8, g),
        )
    return result
