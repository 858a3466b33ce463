"""Density-ratio estimators, selected by name from `config.model.name`."""

from __future__ import annotations

import dataclasses

import flax.linen as nn

from fdrl_jax.errors import ConfigError
from fdrl_jax.models.conv_vjp import CONV_GRADS
from fdrl_jax.models.layers import PARAM_INITS
from fdrl_jax.models.mlp import MLP
from fdrl_jax.models.resnet import ARCHS, ResNetEstimator
from fdrl_jax.models.spectral import apply_spectral_norms, converge_spectral_norms

MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "resnet": ResNetEstimator}


def build_model(cfg) -> nn.Module:
    """The estimator named by `cfg.name`, built from the fields of `cfg` it declares (so one
    config section can hold the fields of several models)."""
    if cfg.name not in MODELS:
        raise ConfigError(
            f"Unknown model {cfg.name!r}; choose one of {sorted(MODELS)} "
            "(config field `model.name`)."
        )
    cls = MODELS[cfg.name]
    known = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    return cls(**{k: v for k, v in cfg.items() if k in known})


__all__ = [
    "ARCHS",
    "CONV_GRADS",
    "MLP",
    "MODELS",
    "PARAM_INITS",
    "ResNetEstimator",
    "apply_spectral_norms",
    "build_model",
    "converge_spectral_norms",
]
