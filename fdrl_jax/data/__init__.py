"""Data sources, selected by name from `config.data.name`."""

from __future__ import annotations

from fdrl_jax.data.images import (
    IMAGE_SOURCES,
    ImageData,
    load_image_set,
    load_images,
    to_uint8,
)
from fdrl_jax.data.streaming import load_training_images
from fdrl_jax.data.toy import TOY_SAMPLERS, PointCloud, ToyData, load_point_cloud
from fdrl_jax.errors import ConfigError

DATASETS = (*TOY_SAMPLERS, "points", *IMAGE_SOURCES)


def build_data(cfg, allow_stream: bool = False):
    """The data source named by `cfg.name`: a 2D toy, 'points' (a file at `cfg.path`) or an
    image source (see `data.images`; with `allow_stream`, kept on the host when
    `cfg.pipeline` says so, see `data.streaming`)."""
    if cfg.name in TOY_SAMPLERS:
        return ToyData(name=cfg.name)
    if cfg.name == "points":
        return load_point_cloud(cfg.get("path", ""), cfg.get("key", None))
    if cfg.name in IMAGE_SOURCES:
        return load_training_images(cfg) if allow_stream else load_images(cfg)
    raise ConfigError(
        f"Unknown dataset {cfg.name!r}; choose one of {sorted(DATASETS)} "
        "(config field `data.name`)."
    )


def is_image_data(data) -> bool:
    return len(data.shape) == 3


__all__ = [
    "DATASETS",
    "ImageData",
    "PointCloud",
    "ToyData",
    "build_data",
    "is_image_data",
    "load_image_set",
    "load_images",
    "load_point_cloud",
    "to_uint8",
]
