"""Base config (2D swissroll, LSIF-χ²). Every field is documented in fdrl_jax/configlib.py."""

from fdrl_jax.configlib import apply_args, default_config


def get_config(arg: str | None = None):
    return apply_args(default_config(), arg)
