"""Shared test set-up: CPU only, offline, 8 simulated CPU devices set up once for the whole
session (so the multi-device checks run in-process, in the fast loop), a compilation cache
shared with the tests' subprocesses, the smoke config, a trained run several tests read, and
the order of the test files (heaviest first, see `pytest_collection_modifyitems`).

The modes take every device they see; here they run on the first device unless a test asks
for all 8 (`all_devices`, `helpers.devices(8)`) or passes a mesh itself.
"""

import fcntl
import json
import math
import os
import shutil
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
from helpers import XLA_TEST_FLAGS, configs, devices, digits_config, importorskip_in_ci, in_ci

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_TEST_FLAGS}"
chex.set_n_cpu_devices(8)  # before any JAX operation; subprocesses set their own
if in_ci():  # an installed extra that does not import fails its tests instead of skipping them
    pytest.importorskip = importorskip_in_ci

from fdrl_jax import configlib  # noqa: E402
from fdrl_jax.modes.classifier_mode import classifier_mode  # noqa: E402
from fdrl_jax.modes.train_mode import train_mode  # noqa: E402

# Seconds each test file took (`python -m pytest --record-file-seconds` rewrites it).
FILE_SECONDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "file_seconds.json")


def pytest_addoption(parser):
    parser.addoption(
        "--record-file-seconds",
        action="store_true",
        help=f"write each test file's total seconds to {FILE_SECONDS} (orders the next runs)",
    )


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker more than the cores this process may use: with one per core,
    14% of the cores' time went idle (tests waiting on their subprocesses, signals and
    timeouts; benchmarks/RESULTS.md, "The full test suite's time")."""
    return len(os.sched_getaffinity(0)) + 1


def pytest_collection_modifyitems(config, items):
    """Test files heaviest first (a file missing from FILE_SECONDS first of all): each xdist
    worker takes whole files (`--dist=loadfile`) in this order, so the minute-long files do
    not start last and leave one worker running them alone."""
    try:
        with open(FILE_SECONDS) as f:
            seconds = json.load(f)
    except FileNotFoundError:
        return
    first_seen = {}
    for item in items:
        first_seen.setdefault(item.path.name, len(first_seen))
    items.sort(key=lambda it: (-seconds.get(it.path.name, math.inf), first_seen[it.path.name]))


_file_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    name = os.path.basename(report.nodeid.split("::", 1)[0])
    _file_seconds[name] = _file_seconds.get(name, 0.0) + report.duration


def pytest_sessionfinish(session):
    # On the xdist controller (or a run without xdist), which sees every worker's reports.
    if session.config.getoption("record_file_seconds") and not hasattr(
        session.config, "workerinput"
    ):
        with open(FILE_SECONDS, "w") as f:
            json.dump({k: round(v, 1) for k, v in sorted(_file_seconds.items())}, f, indent=1)
            f.write("\n")


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


def _shared_run(tmp_path_factory, name: str, train) -> str:
    """The work directory `name` of this test session, written once by `train(workdir)`: the
    first xdist worker to ask trains it, the others wait for it, then read it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's directory, above each worker's own
    workdir, done = base / name, base / f"{name}.done"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            train(str(workdir))
            done.touch()
    return str(workdir)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """(make_config, workdir) of a digits smoke run trained on all 8 devices, with a
    classifier in its workdir. Tests that write into it work on a copy (`helpers.copy_run`)."""

    def train(wd):
        with devices(8):
            config = digits_config()
            train_mode(config, wd)
            classifier_mode(config, wd)

    return digits_config, _shared_run(tmp_path_factory, "digits_run", train)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """name -> (make_config, workdir) of the smoke run (`configs/<name>:smoke`, or
    `configs/<file>:<args>,smoke` for a name `<file>:<args>`; one device) of a shipped config,
    trained once in the session. Tests that write into it work on a copy (`helpers.copy_run`)."""

    def get(name: str):
        def make_config():
            return configlib.load_config(
                configs(f"{name},smoke" if ":" in name else f"{name}:smoke")
            )

        def train(wd):
            with devices(1):
                train_mode(make_config(), wd)

        return make_config, _shared_run(tmp_path_factory, "smoke_" + name.replace(":", "_"), train)

    return get
