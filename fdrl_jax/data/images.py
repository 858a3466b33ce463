"""Image datasets (docs/settings.md) as device-resident, jittable samplers.

Loading (host, once): the images are read from their source, center-cropped / resized as the
paper and the authors' code do for each dataset and kept as uint8 (N, H, W, C). Sampling
(device, every step, inside the jitted train step): draw indices, random horizontal flip, scale
to [-1, 1], add Gaussian dequantisation noise σ = 0.03. Keeping the uint8 set on the device
means the accelerator never waits on the host between steps, the draw is deterministic for the
step's key, and on a mesh each device gathers only its own shard of the batch. The cost is
device memory: 150 MB for CIFAR-10, 6.2 GB for LSUN Church at 128² (per device). Sets too large
for that are kept on the host and streamed instead (`data/streaming.py`, selected by
`data.pipeline`), with the same batches.

Sources: `digits` (scikit-learn's 8×8 handwritten digits, shipped with scikit-learn), `npz`
(uint8 NHWC with optional labels, or JPEGs in `{split}_jpeg` + `{split}_offsets`), `folder`
(image files, optionally one subfolder per class), `tfds` (TensorFlow Datasets, imported
lazily: `data/tfds_source.py`) and `synthetic` (small random shapes, for smoke runs of the big
configs without their data).
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import struct
from PIL import Image, UnidentifiedImageError

from fdrl_jax.data.tfds_source import load_tfds
from fdrl_jax.errors import ConfigError, DataError, MissingFileError

Array = jax.Array
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@struct.dataclass
class ImageData:
    """A finite image set (uint8, NHWC) with the training-time augmentation (flips,
    dequantisation)."""

    images: Array  # (N, H, W, C) uint8
    labels: Array  # (N,) int32; all -1 when the source has none
    num_classes: int = struct.field(pytree_node=False, default=0)
    flip: bool = struct.field(pytree_node=False, default=True)
    dequant_std: float = struct.field(pytree_node=False, default=0.03)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def sample_with_labels(self, key: Array, n: int) -> tuple[Array, Array]:
        k_idx, k_aug = split_sample_key(key)
        idx = jax.random.randint(k_idx, (n,), 0, self.images.shape[0])
        return augment(self.images[idx], k_aug, self.flip, self.dequant_std), self.labels[idx]

    def sample(self, key: Array, n: int) -> Array:
        return self.sample_with_labels(key, n)[0]

    def clean_batches(self, batch_size: int = 1000) -> Iterator[np.ndarray]:
        """The whole set in [-1, 1], no flips, no noise (what the data-dependent prior fits)."""
        images = np.asarray(self.images)
        for i in range(0, images.shape[0], batch_size):
            yield np.asarray(to_unit_range(images[i : i + batch_size]))


def split_sample_key(key: Array) -> tuple[Array, Array]:
    """(index key, augmentation key) of a batch draw. The streaming input path
    (`data/streaming.py`) draws its indices on the host and augments on the device with these
    same keys, so both paths give the same batch for a key."""
    k_idx, k_flip, k_noise = jax.random.split(key, 3)
    return k_idx, jnp.stack([k_flip, k_noise])


def augment(images: Array, key: Array, flip: bool = True, dequant_std: float = 0.03) -> Array:
    """uint8 (n, H, W, C) -> a training batch: random horizontal flips, [-1, 1],
    Gaussian dequantisation noise (no clamp). `key` is `split_sample_key`'s second key."""
    k_flip, k_noise = key[0], key[1]
    x = to_unit_range(images)
    if flip:
        flips = jax.random.bernoulli(k_flip, 0.5, (x.shape[0], 1, 1, 1))
        x = jnp.where(flips, x[:, :, ::-1, :], x)
    if dequant_std > 0:
        x = x + dequant_std * jax.random.normal(k_noise, x.shape, x.dtype)
    return x


def to_unit_range(x):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return x.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(x) -> np.ndarray:
    """[-1, 1] floats -> uint8 images (clamped), for grids and files."""
    x = np.clip((np.asarray(x, np.float32) + 1.0) * 127.5, 0, 255)
    return np.round(x).astype(np.uint8)


# ----------------------------------------------------------------------------- preprocessing


def preprocess(img, crop_first: int = 0, resize: int = 0, size: int = 0, keep_aspect: bool = True):
    """The preprocessing of one PIL image, as the reference's torchvision transforms on PIL
    images: center crop `crop_first` (CelebA: 140); resize (bilinear, antialiased: PIL's
    BILINEAR filter widens with the scale when shrinking) the shorter side to `resize`, the
    longer to int(resize · long / short) as `transforms.Resize(int)` does, or with
    `keep_aspect=False` both sides to `resize` (`Resize((s, s))`, LSUN Church); center crop
    `size`."""
    if crop_first:
        img = _center_crop(img, crop_first)
    if resize:
        w, h = img.size
        if not keep_aspect:
            new = (resize, resize)
        elif w <= h:
            new = (resize, int(resize * h / w))
        else:
            new = (int(resize * w / h), resize)
        if new != (w, h):
            img = img.resize(new, Image.BILINEAR)
    if size:
        img = _center_crop(img, size)
    return img


def _center_crop(img, size: int):
    """torchvision's CenterCrop: the offset round((side − size) / 2), half to even."""
    w, h = img.size
    if w < size or h < size:
        raise DataError(
            f"An image of {w}×{h} is smaller than the crop {size}; set data.resize to at least "
            f"{size} so it is resized first."
        )
    left, top = round((w - size) / 2.0), round((h - size) / 2.0)
    return img.crop((left, top, left + size, top + size))


def preprocess_args(cfg) -> dict:
    """The `preprocess` arguments of a data config section."""
    return {
        "crop_first": cfg.get("crop_first", 0),
        "resize": cfg.get("resize", 0),
        "size": cfg.get("size", 0),
        "keep_aspect": cfg.get("keep_aspect", True),
    }


def _to_array(img, channels: int) -> np.ndarray:
    mode = {1: "L", 3: "RGB"}[channels]
    x = np.asarray(img.convert(mode), np.uint8)
    return x[..., None] if x.ndim == 2 else x


def _process_image(im: np.ndarray, cfg, channels: int) -> np.ndarray:
    """One uint8 HWC (or HW) image through the config's preprocessing."""
    pil = Image.fromarray(im[..., 0] if im.ndim == 3 and im.shape[-1] == 1 else im)
    return _to_array(preprocess(pil, **preprocess_args(cfg)), channels)


def _process_array(x: np.ndarray, cfg) -> np.ndarray:
    """Apply the config's crop / resize / channel conversion to a uint8 NHWC array."""
    args = preprocess_args(cfg)
    crop_first, resize, size = args["crop_first"], args["resize"], args["size"]
    if x.shape[-1] not in (1, 3):
        raise DataError(
            f"Images must have 1 or 3 channels (NHWC); got shape {x.shape}. Convert the "
            "array to uint8 (N, H, W, C) with C = 1 or 3."
        )
    channels = cfg.get("channels", 0) or x.shape[-1]
    if channels != x.shape[-1]:  # a stated conversion, not a silent one
        logging.warning(
            "data.channels = %d: converting %d-channel images to %d channel(s) (%s)",
            channels,
            x.shape[-1],
            channels,
            "grey copied to R, G and B" if channels == 3 else "PIL's luma L = 0.299R+0.587G+0.114B",
        )
    same_size = size == 0 or x.shape[1:3] == (size, size)
    if not (crop_first or resize) and same_size and channels == x.shape[-1]:
        return x  # nothing to do: skip the per-image round trip through PIL
    return np.stack([_process_image(im, cfg, channels) for im in x])


# ----------------------------------------------------------------------------- sources


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits, 8×8×1 uint8 (values 0..16 scaled to 0..255)."""
    from sklearn.datasets import load_digits  # scikit-learn: off the start-up path

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return x, d.target.astype(np.int32)


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            np.asarray(Image.open(io.BytesIO(blob[a:b].tobytes())).convert("RGB"))
            for a, b in itertools.pairwise(offsets)
        ]
    )


def load_npz_images(path: str, split: str = "train", key: str | None = None):
    """uint8 NHWC images (+ optional labels) from an .npz.

    Array names tried: `key`, then `images`, `x`, `{split}_images`, or the only 4-D array;
    labels from `labels`, `y` or `{split}_labels`. The JPEG layout `{split}_jpeg` +
    `{split}_offsets` (a CIFAR-10 re-encoding) is decoded. A `.npy` (images only, no labels)
    is memory-mapped, not read: with the streaming input path (`data.pipeline`) a set larger
    than the host's memory then trains from the disk's page cache.
    """
    _require_file(path, "an .npz of uint8 images (N, H, W, C)")
    if path.endswith(".npy"):
        return _check_images(path, np.load(path, mmap_mode="r"), None)
    with np.load(path) as z:
        names = set(z.files)
        if f"{split}_jpeg" in names and f"{split}_offsets" in names:
            x = _decode_jpegs(z[f"{split}_jpeg"], z[f"{split}_offsets"])
        else:
            candidates = [key] if key else ["images", "x", f"{split}_images"]
            found = [c for c in candidates if c in names]
            if not found and not key:
                found = [n for n in z.files if z[n].ndim == 4]
            if len(found) != 1:
                raise DataError(
                    f"{path}: cannot tell which array holds the images (it has {sorted(names)}); "
                    "set --config.data.key=NAME"
                )
            x = z[found[0]]
        label_name = next((n for n in ("labels", "y", f"{split}_labels") if n in names), None)
        y = z[label_name].astype(np.int32) if label_name else None
    return _check_images(path, x, y)


def _check_images(path: str, x: np.ndarray, y: np.ndarray | None):
    if x.ndim == 3:  # (N, H, W) grey
        x = x[..., None]
    if x.ndim != 4 or x.dtype != np.uint8:
        raise DataError(
            f"{path}: images must be uint8 of shape (N, H, W, C); got {x.dtype} {x.shape}"
        )
    if y is not None and y.shape != (x.shape[0],):
        raise DataError(f"{path}: {x.shape[0]} images but labels of shape {y.shape}")
    return x, y


def load_image_folder(path: str, cfg) -> tuple[np.ndarray, np.ndarray | None]:
    """Image files under `path`; with subfolders, one class per subfolder (sorted names).

    Each file is preprocessed as the config says; an unreadable file is an error naming it,
    or (data.skip_bad_files) skipped and counted. Sizes must agree after preprocessing.
    """
    if not os.path.isdir(path):
        raise MissingFileError(
            f"Image folder {path!r} does not exist; set --config.data.path to a folder of "
            "image files (optionally one subfolder per class)."
        )
    subdirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    groups = [(i, os.path.join(path, d)) for i, d in enumerate(subdirs)] or [(-1, path)]
    channels = cfg.get("channels", 0) or 3
    images, labels, bad = [], [], []
    for label, folder in groups:
        for name in sorted(os.listdir(folder)):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            file = os.path.join(folder, name)
            try:
                with Image.open(file) as img:
                    img.load()
                    arr = _to_array(preprocess(img, **preprocess_args(cfg)), channels)
            except (OSError, UnidentifiedImageError, SyntaxError) as e:
                if not cfg.get("skip_bad_files", False):
                    raise DataError(
                        f"Cannot read image {file}: {e}. Remove or fix it, or set "
                        "--config.data.skip_bad_files=True to skip unreadable files."
                    ) from e
                bad.append(file)
                continue
            if images and arr.shape != images[0][1].shape:
                raise DataError(
                    f"Images differ in size: {images[0][0]} is {images[0][1].shape}, {file} is "
                    f"{arr.shape}. Set --config.data.size (and data.resize) to make them agree."
                )
            images.append((file, arr))
            labels.append(label)
    if bad:
        logging.warning("Skipped %d unreadable image files, e.g. %s", len(bad), bad[0])
    if not images:
        raise DataError(
            f"No readable images ({', '.join(IMAGE_EXTENSIONS)}) in {path}"
            + (f" ({len(bad)} unreadable)" if bad else "")
        )
    x = np.stack([a for _, a in images])
    y = np.asarray(labels, np.int32) if subdirs else None
    return x, y


def synthetic_images(n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    """n random discs on a gradient background: a stand-in of any size for smoke runs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    cy, cx, rad = rng.uniform(0.3, 0.7, (3, n, 1, 1))
    rad = rad * 0.5
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < rad**2).astype(np.float32)
    colour = rng.uniform(0, 1, (n, 1, 1, channels))
    x = 0.3 * yy[None, ..., None] + disc[..., None] * colour
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _require_file(path: str, what: str) -> None:
    if not path:
        raise DataError(f"This dataset needs a file: set --config.data.path to {what}")
    if not os.path.exists(path):
        raise MissingFileError(
            f"Data file {path!r} does not exist; set --config.data.path to {what}"
        )


IMAGE_SOURCES = ("digits", "npz", "folder", "tfds", "synthetic")


def load_image_arrays(cfg) -> tuple[np.ndarray, np.ndarray, int]:
    """(uint8 NHWC images, int32 labels (-1 where none), class count) of the image dataset the
    data config names, preprocessed, narrowed to `classes` and checked; on the host."""
    name, split = cfg.name, cfg.get("split", "train")
    if name == "digits":
        x, y = load_digits_images()
        x = _process_array(x, cfg)
    elif name == "npz":
        x, y = load_npz_images(cfg.get("path", ""), split, cfg.get("key", None))
        x = _process_array(x, cfg)
    elif name == "folder":
        x, y = load_image_folder(cfg.get("path", ""), cfg)
    elif name == "tfds":
        channels = cfg.get("channels", 0) or 3
        x, y = load_tfds(
            cfg.get("tfds_name", ""),
            split,
            cfg.get("tfds_data_dir", ""),
            lambda im: _process_image(im, cfg, channels),
        )
    elif name == "synthetic":
        size = cfg.get("size", 0) or 32
        x, y = (
            synthetic_images(cfg.get("synthetic_count", 256), size, cfg.get("channels", 0) or 3),
            None,
        )
    else:
        raise ConfigError(f"Unknown image source {name!r}; choose one of {list(IMAGE_SOURCES)}")
    if x.shape[0] == 0:
        raise DataError(f"Dataset {name!r} ({cfg.get('path', '')}) holds no images.")
    num_classes = int(y.max()) + 1 if y is not None and len(y) else 0
    classes = tuple(cfg.get("classes", ()) or ())
    if classes:  # e.g. CIFAR-10 cats only (class 3) for a translation domain
        if y is None:
            raise DataError(f"data.classes = {classes} needs labels, and {name!r} has none.")
        keep = np.isin(y, classes)
        if not keep.any():
            raise DataError(
                f"No images of classes {classes} in {name!r} (labels 0..{num_classes - 1})."
            )
        x, y = x[keep], y[keep]
    if y is None:
        y = np.full((x.shape[0],), -1, np.int32)
    logging.info("Loaded %d images of shape %s from %s", x.shape[0], x.shape[1:], name)
    return x, y, num_classes


def augmentation_args(cfg) -> dict:
    """The `flip` / `dequant_std` of an image set built from a data config section."""
    return {"flip": bool(cfg.get("flip", True)), "dequant_std": float(cfg.get("dequant_std", 0.03))}


def to_image_data(x: np.ndarray, y: np.ndarray, num_classes: int, cfg) -> ImageData:
    """`load_image_arrays`'s host arrays as an `ImageData` on the device, augmented as the data
    config says."""
    return ImageData(
        images=jnp.asarray(x),
        labels=jnp.asarray(y),
        num_classes=num_classes,
        **augmentation_args(cfg),
    )


def load_images(cfg) -> ImageData:
    """The image dataset the data config names, preprocessed and checked, on the device (the
    streaming input path's loader is `data.streaming.load_training_images`)."""
    return to_image_data(*load_image_arrays(cfg), cfg)


def load_image_set(base, path: str, key: str | None = None) -> Array:
    """The uint8 images (N, H, W, C) of `path` (a folder or an .npz; "" = the data section
    `base` itself), preprocessed as the data section `base` says (e.g. translation inputs)."""
    cfg = ml_collections.ConfigDict(base.to_dict())
    if path:
        if not os.path.exists(path):
            raise MissingFileError(f"{path!r} does not exist: give a folder of images or an .npz.")
        cfg.name = "folder" if os.path.isdir(path) else "npz"
        cfg.path = path
        if key is not None:
            cfg.key = key
    cfg.flip = False
    return load_images(cfg).images
