"""Shared test set-up: CPU only, offline, 8 simulated CPU devices set up once for the whole
session (so the multi-device checks run in-process, in the fast loop), a compilation cache
shared with the tests' subprocesses, the smoke config, and a trained run several tests read.

The modes take every device they see; here they run on the first device unless a test asks
for all 8 (`all_devices`, `helpers.devices(8)`) or passes a mesh itself.
"""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests compile the same programs again (resume, subprocess runs): a compilation cache shared
# by this session and its subprocesses makes the second compile a file read.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "fdrl_jax_test_jit_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import chex
import pytest
from helpers import XLA_TEST_FLAGS, devices, digits_config

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_TEST_FLAGS}"
chex.set_n_cpu_devices(8)  # before any JAX operation; subprocesses set their own

from fdrl_jax import configlib  # noqa: E402
from fdrl_jax.modes.classifier_mode import classifier_mode  # noqa: E402
from fdrl_jax.modes.train_mode import train_mode  # noqa: E402


@pytest.fixture(autouse=True)
def one_device():
    with devices(1):
        yield


@pytest.fixture
def all_devices():
    with devices(8):
        yield


@pytest.fixture
def smoke_config():
    """A seconds-long swiss-roll config (LSIF-χ², the default config's `smoke`)."""
    return configlib.smoke(configlib.default_config())


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """(make_config, workdir) of a digits smoke run trained on all 8 devices, with a
    classifier in its workdir. Tests that write into it work on a copy (`helpers.copy_run`)."""
    wd = str(tmp_path_factory.mktemp("digits_run"))
    with devices(8):
        config = digits_config()
        train_mode(config, wd)
        classifier_mode(config, wd)
    return digits_config, wd
