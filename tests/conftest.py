"""Shared test helpers. Tests run on CPU, offline, on small data made here."""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests compile the same programs again (resume, subprocess runs): a compilation cache shared
# by this session and its subprocesses makes the second compile a file read.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "fdrl_jax_test_jit_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import pytest

from fdrl_jax import configlib


@pytest.fixture
def smoke_config():
    """A seconds-long swissroll config (LSIF-χ²)."""
    return configlib.apply_args(configlib.default_config(), "smoke")
