"""Unpaired image-to-image translation (paper Sec. 6.5): flow source images to the target.

Training is Algorithm 1 unchanged, with the prior replaced by source-domain images
(`prior.name = "dataset"`, drawn with the source's flips and dequantisation noise, not clamped)
and the data by the target domain. Translating is the flow itself: the source images
(preprocessed, randomly flipped if the source section flips, without dequantisation noise, as
the reference does at test time) flow `translate.num_steps` steps (the paper: K = 100 in
training, 110 at test time) with the EMA params.

`run_translate` is `--mode=translate`; `digits_pair` and `cifar_pair` write the
`trainA/trainB/testA/testB` .npz layout of an offline pair (A = source, B = target).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from fdrl_jax import flow as flow_lib
from fdrl_jax import parallel

Array = jax.Array


def translate(
    potential: flow_lib.Potential,
    x0: Array,
    key: Array,
    num_steps: int,
    eta: float,
    nu: float,
    clip_output: bool = True,
) -> Array:
    """Source images x0 (B, H, W, C) in [-1, 1] flowed `num_steps` steps (pure)."""
    x = flow_lib.flow(potential, x0, key, num_steps, eta, nu)
    return jnp.clip(x, -1.0, 1.0) if clip_output else x


def prepare_source(images: Array, key: Array, flip: bool) -> Array:
    """uint8 source images -> [-1, 1], each randomly mirrored when `flip`: the reference's
    test-time sources (no dequantisation noise, no clamp; its training draws are dequantised
    and not clamped either, see `prior.clip` in the translation configs)."""
    x = images.astype(jnp.float32) / 127.5 - 1.0
    if flip:
        mirror = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
        x = jnp.where(mirror, x[:, :, ::-1, :], x)
    return x


def content_kept(source: np.ndarray, translated: np.ndarray, seed: int = 0) -> float:
    """Fraction of images closer (pixel L2) to their own source than to another random source
    (each image paired with a different one): 1.0 when translation keeps every image's
    content, about 0.5 when outputs are unrelated to their inputs."""
    n = len(source)
    if n < 2:
        return float("nan")
    s = np.asarray(source, np.float64).reshape(n, -1)
    t = np.asarray(translated, np.float64).reshape(n, -1)
    other = (np.arange(n) + np.random.default_rng(seed).integers(1, n, n)) % n
    own = np.linalg.norm(t - s, axis=1)
    rand = np.linalg.norm(t - s[other], axis=1)
    return float(np.mean(own < rand))


def _image_section(base, path: str, key: str | None) -> ml_collections.ConfigDict:
    """A copy of the data section `base` reading `path` (a folder or an .npz), no flips."""
    cfg = ml_collections.ConfigDict(base.to_dict())
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path!r} does not exist: give a folder of images or an .npz.")
        cfg.name = "folder" if os.path.isdir(path) else "npz"
        cfg.path = path
        if key is not None:
            cfg.key = key
    cfg.flip = False
    return cfg


def load_image_set(base, path: str, key: str | None = None):
    """The uint8 images (N, H, W, C) of `path` (a folder or .npz; "" = the section `base`
    itself), preprocessed as the data section `base` says."""
    from fdrl_jax.data import load_images

    return load_images(_image_section(base, path, key)).images


def _pairs_grid(before: np.ndarray, after: np.ndarray, ncol: int = 8) -> np.ndarray:
    """Rows of `ncol` sources, each followed by the row of their translations."""
    rows = []
    for i in range(0, len(before), ncol):
        b, a = before[i : i + ncol], after[i : i + ncol]
        if len(b) < ncol:  # pad the last pair of rows with blank (white) images
            pad = np.ones((ncol - len(b), *b.shape[1:]), b.dtype)
            b, a = np.concatenate([b, pad]), np.concatenate([a, pad])
        rows += [b, a]
    return np.concatenate(rows)


def run_translate(config, workdir: str) -> dict:
    """`--mode=translate`: translate `translate.input` (a folder or .npz of source images;
    "" = the dataset prior's own images) with the latest checkpoint's EMA params. Writes
    eval/translate/translated.npz (`source`, `translated` floats, uint8 `images`),
    before_after.png (rows of sources, each above its translations) and translate.json (moved
    distance, `content_kept`, and the FID against `translate.target` when given)."""
    from fdrl_jax import plotting
    from fdrl_jax.data import to_uint8
    from fdrl_jax.train import restore_for_inference

    t = config.translate
    feature_fn = None
    if t.target:  # fail before the work if FID cannot be computed
        from fdrl_jax.evaluation.inception import make_inception_feature_fn

        feature_fn = make_inception_feature_fn(weights_path=t.fid_weights or None)
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
        raise ValueError(
            f"Source images of shape {tuple(images.shape[1:])} do not match the data's "
            f"{exp.shape}; set prior.source.size / resize / channels to match `data`."
        )
    potential_fn = jax.jit(
        lambda v, x0, key: translate(
            flow_lib.make_potential(exp.apply_fn, v, exp.fprime),
            x0,
            key,
            t.num_steps,
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
        x0 = prepare_source(images[start : start + t.batch_size], k_flip, flip)
        sources.append(np.asarray(x0))
        # Shard the batch over the devices (padded to a multiple of their count; the flow's
        # noise for the first rows does not depend on the padding).
        m = x0.shape[0]
        pad = -(-m // mesh.size) * mesh.size - m
        x0 = jnp.concatenate([x0, jnp.repeat(x0[-1:], pad, axis=0)]) if pad else x0
        x0 = jax.device_put(x0, parallel.batch_sharded(mesh))
        out = parallel.to_host(potential_fn(state.ema_variables, x0, k_flow))
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
        "content_kept": content_kept(source, translated, t.seed),
    }
    if feature_fn is not None:
        from fdrl_jax.evaluation.fid import fid_from_images

        target = np.asarray(load_image_set(config.data, t.target))
        result["fid"] = fid_from_images(to_uint8(translated), target, feature_fn, batch_size=50)
        result["num_target_images"] = len(target)
    if parallel.is_main_process():
        out = os.path.join(workdir, "eval", "translate")
        os.makedirs(out, exist_ok=True)
        np.savez(
            os.path.join(out, "translated.npz"),
            source=source,
            translated=translated,
            images=to_uint8(translated),
            step=result["step"],
        )
        g = min(t.grid_size, n)
        plotting.save_image_grid(
            _pairs_grid(source[:g], translated[:g], min(8, g)),
            os.path.join(out, "before_after.png"),
            ncol=min(8, g),
        )
        with open(os.path.join(out, "translate.json"), "w") as f:
            json.dump(result, f, indent=2)
    logging.info("translate: %s", json.dumps(result))
    return result


# ----------------------------------------------------------------------------- offline pairs


def _write_pair(out_dir: str, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    for name, (x, y) in parts.items():
        # `class_labels`, not `labels`: the loaders would read a domain's class ids as its labels
        np.savez(os.path.join(out_dir, f"{name}.npz"), images=x, class_labels=y)
    return {name: len(x) for name, (x, _) in parts.items()}


def bold(images: np.ndarray) -> np.ndarray:
    """Strokes one pixel wider: the max of each pixel and its left neighbour (a 1×2 grey
    dilation; a 2×2 one turns 8×8 digits into blobs), uint8 (N, H, W, C) -> same."""
    left = np.pad(images, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]
    return np.maximum(images, left)


PAIR_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bold": bold,
    "invert": lambda x: 255 - x,
}


def digits_pair(out_dir: str, transform: str = "bold", num_test: int = 100, seed: int = 0) -> dict:
    """An unpaired digits pair in `out_dir`: A = half of scikit-learn's digits as they are,
    B = the *other* half with `transform` applied (so no B image is a transformed A image);
    `num_test` of each are held out as testA / testB. Returns the image counts."""
    from fdrl_jax.data.images import load_digits_images

    if transform not in PAIR_TRANSFORMS:
        raise ValueError(
            f"Unknown transform {transform!r}; choose one of {sorted(PAIR_TRANSFORMS)}"
        )
    x, y = load_digits_images()
    perm = np.random.default_rng(seed).permutation(len(x))
    half = len(x) // 2
    a, b = perm[:half], perm[half:]
    xb = PAIR_TRANSFORMS[transform](x[b])
    return _write_pair(
        out_dir,
        {
            "trainA": (x[a[num_test:]], y[a[num_test:]]),
            "testA": (x[a[:num_test]], y[a[:num_test]]),
            "trainB": (xb[num_test:], y[b[num_test:]]),
            "testB": (xb[:num_test], y[b[:num_test]]),
        },
    )


def cifar_pair(npz_path: str, out_dir: str, source: str = "cat", target: str = "dog") -> dict:
    """CIFAR-10 `source` -> `target` (class names) from a CIFAR-10 .npz in the
    JPEG layout (`classes`, `{split}_jpeg`, `{split}_offsets`, `{split}_labels`): trainA /
    trainB from the train split (5,000 each), testA / testB from the test split (1,000 each).
    Returns the image counts."""
    from PIL import Image

    parts = {}
    with np.load(npz_path) as z:
        classes = [str(c) for c in z["classes"]]
        for name in (source, target):
            if name not in classes:
                raise ValueError(f"{npz_path} has no class {name!r}; it has {classes}.")
        for split, tag in (("train", "train"), ("test", "test")):
            blob, offsets, labels = z[f"{split}_jpeg"], z[f"{split}_offsets"], z[f"{split}_labels"]
            for cls, side in ((source, "A"), (target, "B")):
                idx = np.flatnonzero(labels == classes.index(cls))
                x = np.stack(
                    [
                        np.asarray(
                            Image.open(
                                io.BytesIO(blob[offsets[i] : offsets[i + 1]].tobytes())
                            ).convert("RGB")
                        )
                        for i in idx
                    ]
                )
                parts[f"{tag}{side}"] = (x, labels[idx].astype(np.int32))
    return _write_pair(out_dir, parts)
