"""Density-ratio estimators, selected by name from `config.model.name`."""

from __future__ import annotations

import flax.linen as nn

from fdrl_jax.models.mlp import MLP

MODELS: dict[str, type[nn.Module]] = {"mlp": MLP}


def build_model(cfg) -> nn.Module:
    """The estimator named by `cfg.name`, built with the remaining fields of `cfg`."""
    if cfg.name not in MODELS:
        raise ValueError(
            f"Unknown model {cfg.name!r}; choose one of {sorted(MODELS)} "
            "(config field `model.name`)."
        )
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    return MODELS[cfg.name](**kwargs)


__all__ = ["MLP", "MODELS", "build_model"]
