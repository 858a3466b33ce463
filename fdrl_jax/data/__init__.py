"""Data sources, selected by name from `config.data.name`."""

from __future__ import annotations

from fdrl_jax.data.toy import TOY_SAMPLERS, PointCloud, ToyData, load_point_cloud


def build_data(cfg):
    """The data source named by `cfg.name`: a 2D toy, or 'points' (a file at `cfg.path`)."""
    if cfg.name in TOY_SAMPLERS:
        return ToyData(name=cfg.name)
    if cfg.name == "points":
        return load_point_cloud(cfg.get("path", ""), cfg.get("key", None))
    known = sorted([*TOY_SAMPLERS, "points"])
    raise ValueError(
        f"Unknown dataset {cfg.name!r}; choose one of {known} (config field `data.name`)."
    )


__all__ = ["PointCloud", "ToyData", "build_data", "load_point_cloud"]
