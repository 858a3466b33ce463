"""Shared test helpers. Tests run on CPU, offline, on small data made here."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest

from fdrl_jax import configlib


@pytest.fixture
def smoke_config():
    """A seconds-long swissroll config (LSIF-χ²)."""
    return configlib.apply_args(configlib.default_config(), "smoke")
