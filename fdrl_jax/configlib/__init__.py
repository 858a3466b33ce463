"""Configs: every field with its default and rule (`defaults`, `modes`), the typed-field
machinery (`fields`) and presets with config arguments (`presets`).

Config files in `configs/` import from here (not from each other), so they load from any
working directory once the package is installed.
"""

from fdrl_jax.configlib.defaults import data_fields, default_config, validate, validate_for_data
from fdrl_jax.configlib.fields import override, set_path
from fdrl_jax.configlib.presets import (
    PAIRINGS,
    apply_args,
    cpu_toy_settings,
    image_config,
    load_config,
    split_arg,
    toy_config,
)

__all__ = [
    "PAIRINGS",
    "apply_args",
    "cpu_toy_settings",
    "data_fields",
    "default_config",
    "image_config",
    "load_config",
    "override",
    "set_path",
    "split_arg",
    "toy_config",
    "validate",
    "validate_for_data",
]
