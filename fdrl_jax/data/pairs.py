"""Image domains for unpaired translation (paper Sec. 6.5): offline pairs in the `trainA /
trainB / testA / testB` .npz layout the translation configs read (A = source, B = target),
scikit-learn's digits against a transformed copy (`digits_pair`) and two CIFAR-10 classes
(`cifar_pair`); and the source images as translation starts from them (`prepare_source`).

Training a translation model is Algorithm 1 with `prior.name = "dataset"` (source-domain images,
drawn with the source's flips and dequantisation noise, not clamped) and the target domain as
data; translating is Algorithm 2 from the prepared sources (the paper: K = 100 in training,
110 at test time)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from fdrl_jax.data.images import load_digits_images
from fdrl_jax.errors import DataError


def prepare_source(images, key: jax.Array, flip: bool) -> jax.Array:
    """uint8 source images -> [-1, 1], each randomly mirrored when `flip`: the reference's
    test-time sources (no dequantisation noise, no clamp; its training draws are dequantised
    and not clamped either, see `prior.clip` in the translation configs)."""
    x = jnp.asarray(images).astype(jnp.float32) / 127.5 - 1.0
    if flip:
        mirror = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
        x = jnp.where(mirror, x[:, :, ::-1, :], x)
    return x


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
    if transform not in PAIR_TRANSFORMS:
        raise DataError(f"Unknown transform {transform!r}; choose one of {sorted(PAIR_TRANSFORMS)}")
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
    parts = {}
    with np.load(npz_path) as z:
        classes = [str(c) for c in z["classes"]]
        for name in (source, target):
            if name not in classes:
                raise DataError(f"{npz_path} has no class {name!r}; it has {classes}.")
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
