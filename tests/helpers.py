"""Helpers the tests share: config paths, equality of states, the devices the modes see, a
subprocess's environment (without TensorFlow unless asked), and runs to copy."""

import contextlib
import importlib.metadata
import os
import shutil

import jax
import numpy as np
import pytest

from fdrl_jax import configlib, parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# XLA:CPU's backend optimisation off: tests check what programs compute, not how fast, and a
# ResNet training step compiles 3× faster (27 s -> 9 s) and runs ~1.4× slower. The same
# flags in the tests' subprocesses keep their results bit-equal to the session's.
XLA_TEST_FLAGS = "--xla_backend_optimization_level=0"


def configs(name: str) -> str:
    """The path of a config file in configs/ (with an optional `:arg`)."""
    return os.path.join(ROOT, "configs", name)


def leaves_equal(a, b) -> bool:
    """Every leaf of two pytrees bit for bit equal."""
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def assert_close(a, b, rtol=1e-5, atol=0.0):
    """Every leaf within `rtol` relative (L2 norm of the difference over the reference's), or
    `atol` absolute: what differs between device counts is the order of batch reductions."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        err = np.linalg.norm(x - y)
        assert err <= rtol * np.linalg.norm(y) + atol, err


# On PYTHONPATH, a directory whose sitecustomize.py makes TensorFlow unimportable.
WITHOUT_TENSORFLOW = os.path.join(ROOT, "tests", "without_tensorflow")


def env(devices: int = 1, tensorflow: bool = False, **extra) -> dict:
    """A subprocess's environment: CPU only, `devices` simulated devices, and TensorFlow
    unimportable unless asked for: importing it costs a process ~5 s of CPU, for TensorBoard
    summaries that only `test_summaries.py` and one command-line run read."""
    out = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
    out["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} {XLA_TEST_FLAGS}"
    if not tensorflow:
        out["PYTHONPATH"] = os.pathsep.join(
            p for p in (WITHOUT_TENSORFLOW, out.get("PYTHONPATH")) if p
        )
    return out


ALL_DEVICES_MESH = parallel.make_mesh


@contextlib.contextmanager
def devices(n: int):
    """Inside, the modes' mesh (`parallel.make_mesh()`) spans the first n devices."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(
            parallel,
            "make_mesh",
            lambda d=None: ALL_DEVICES_MESH(d if d is not None else jax.devices()[:n]),
        )
        yield


def digits_config():
    """configs/digits.py:smoke with a small, quickly trained classifier (for the guided modes)."""
    config = configlib.load_config(configs("digits.py:smoke"))
    return configlib.override(
        config,
        {
            "classifier.num_steps": 20,
            "classifier.hidden": 16,
            "classifier.features": (4,),
            "classifier.adv_eps": 0.0,
            "conditional.num_samples": 4,
            "translate.num_images": 8,
            "translate.num_steps": 3,
        },
    )


def copy_run(run, tmp_path) -> tuple:
    """(a fresh config, a copy of the run's workdir) of a (make_config, workdir) run."""
    make_config, wd = run
    copy = str(tmp_path / "run")
    shutil.copytree(wd, copy)
    return make_config(), copy


def in_ci() -> bool:
    """Whether the tests run in CI (`CI=true`, as CI services and `.ci/run` set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


_importorskip = pytest.importorskip


def importorskip_in_ci(modname: str, *args, **kwargs):
    """`pytest.importorskip`, except that in CI a package that is installed (its distribution
    is there) but does not import fails the test instead of skipping it: a broken install of
    an extra must not turn its tests into silent skips. A package that is not installed at
    all still skips."""
    try:
        return _importorskip(modname, *args, **kwargs)
    except pytest.skip.Exception as skip:
        top = modname.split(".")[0]
        if in_ci() and importlib.metadata.packages_distributions().get(top):
            pytest.fail(f"CI: {modname} is installed but does not import ({skip})", pytrace=False)
        raise
