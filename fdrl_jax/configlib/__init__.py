"""Configs: every field with its default and rule (`defaults`, `modes`), the typed-field
machinery (`fields`), and what config files build on (`presets`: the config argument, the
paper's image recipe, the smoke variant, loading a file).

Config files in `configs/` import from here (not from each other), so they load from any
working directory once the package is installed.
"""

from fdrl_jax.configlib.defaults import data_fields, default_config, validate, validate_for_data
from fdrl_jax.configlib.fields import flatten, override, set_path
from fdrl_jax.configlib.presets import (
    PAIRINGS,
    TOY_CPU,
    Choice,
    choice,
    image_config,
    load_config,
    no_paper_settings,
    parse_arg,
    smoke,
)

__all__ = [
    "PAIRINGS",
    "TOY_CPU",
    "Choice",
    "choice",
    "data_fields",
    "default_config",
    "flatten",
    "image_config",
    "load_config",
    "no_paper_settings",
    "override",
    "parse_arg",
    "set_path",
    "smoke",
    "validate",
    "validate_for_data",
]
