"""The run directory, a contract other tools read (DESIGN "The work directory"):

    <workdir>/config.json      resolved config of the run
    <workdir>/checkpoints/     orbax checkpoints (run/checkpoints.py)
    <workdir>/metrics.jsonl    one JSON object per logged step
    <workdir>/metrics.png      the logged curves
    <workdir>/samples/         sample grids / scatter plots during training
    <workdir>/prior.npz        the fitted data-dependent prior, reused while its settings hold
    <workdir>/tensorboard/     TensorBoard summaries (when TensorFlow and clu are installed)
    <workdir>/eval/            what the inference modes write

Every read and write of those files is here. Only process 0 writes; every process reads.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax.numpy as jnp
import numpy as np
from absl import logging

from fdrl_jax import parallel
from fdrl_jax.errors import WorkdirError
from fdrl_jax.experiment import INPUT_PATH_FIELDS, Experiment, build_experiment
from fdrl_jax.priors import FullCovariancePrior, LowRankPrior

# Sections read only after training (sampling, scoring, refining, guiding, translating):
# changing them does not change the trained model.
INFERENCE_SECTIONS = (
    "sample.",
    "eval.",
    "refine.",
    "gan.",
    "classifier.",
    "conditional.",
    "translate.",
    # How the images reach the devices, and where TFDS keeps them (not the data itself).
    *(f"{sec}.{f}" for sec in ("data", "prior.source") for f in INPUT_PATH_FIELDS),
)


def check_writable(workdir: str) -> None:
    """Create the run directory (and samples/) or fail with a clear message, before any data
    is loaded or any prior fitted."""
    try:
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        probe = os.path.join(workdir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise WorkdirError(
            f"Cannot write to --workdir={workdir} ({e.strerror}); choose a writable directory."
        ) from e


def write_config(config, workdir: str) -> None:
    if parallel.is_main_process():
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def warn_if_config_differs(config, workdir: str) -> list[str]:
    """Fields (outside the inference sections) where `config` differs from the run's
    config.json; logs them as a warning."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        saved = _flatten(json.load(f))
    now = _flatten(json.loads(config.to_json_best_effort()))
    diff = sorted(
        k
        for k in set(saved) | set(now)
        if saved.get(k) != now.get(k) and not k.startswith(INFERENCE_SECTIONS)
    )
    if diff:
        logging.warning(
            "The config differs from the one %s was trained with in: %s. Pass the same "
            "overrides as for training to sample/evaluate that model.",
            workdir,
            ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in diff),
        )
    return diff


class MetricsLog:
    """<workdir>/metrics.jsonl: one JSON object per logged step (process 0 writes)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = None

    def truncate(self, max_step: int) -> None:
        """Drop lines past `max_step` (a resumed or rolled-back run reads as one run)."""
        if not parallel.is_main_process() or not os.path.exists(self.path):
            return
        with open(self.path) as f:
            keep = [ln for ln in f if ln.strip() and json.loads(ln).get("step", 0) <= max_step]
        with open(self.path, "w") as f:
            f.writelines(keep)

    def write(self, row: dict) -> None:
        if not parallel.is_main_process():
            return
        if self._file is None:
            self._file = open(self.path, "a")  # closed in close()
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_PRIOR_CLASSES = {"full": FullCovariancePrior, "lowrank": LowRankPrior}


def save_prior(path: str, prior, fingerprint: str) -> None:
    """Store a fitted prior (and what it was fitted to) so later runs reuse it."""
    form = "lowrank" if isinstance(prior, LowRankPrior) else "full"
    arrays = {k: np.asarray(v) for k, v in vars(prior).items() if k != "shape"}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"  # write then rename: a crash never leaves half a file
    np.savez(tmp, form=form, shape=np.asarray(prior.shape), fingerprint=fingerprint, **arrays)
    os.replace(tmp, path)


def load_prior(path: str, fingerprint: str):
    """The prior stored at `path`, or None if absent, unreadable or fitted to something else."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as z:
            if str(z["fingerprint"]) != fingerprint:
                logging.info("%s was fitted with other settings; fitting again", path)
                return None
            cls = _PRIOR_CLASSES[str(z["form"])]
            fields = [f.name for f in dataclasses.fields(cls) if f.name != "shape"]
            return cls(
                **{f: jnp.asarray(z[f]) for f in fields}, shape=tuple(int(s) for s in z["shape"])
            )
    except (OSError, KeyError, ValueError) as e:
        logging.warning("Ignoring unreadable prior file %s (%s); fitting again", path, e)
        return None


@dataclasses.dataclass(frozen=True)
class PriorCache:
    """<workdir>/prior.npz as an `experiment.PriorCache`."""

    workdir: str

    @property
    def path(self) -> str:
        return os.path.join(self.workdir, "prior.npz")

    def load(self, fingerprint: str):
        prior = load_prior(self.path, fingerprint)
        if prior is not None:
            logging.info("Using the fitted prior in %s", self.path)
        return prior

    def save(self, prior, fingerprint: str) -> None:
        if not parallel.is_main_process():
            return
        try:
            save_prior(self.path, prior, fingerprint)
        except OSError as e:  # a read-only workdir (e.g. sampling elsewhere) only costs a refit
            logging.warning("Could not store the fitted prior in %s: %s", self.path, e)


def experiment(config, workdir: str) -> Experiment:
    """`build_experiment` with the run directory's prior cache."""
    return build_experiment(config, prior_cache=PriorCache(workdir))


def write_results(out: str, name: str, result: dict, arrays: dict | None = None) -> str:
    """What a mode writes: `<out>/<name>.json` (the result) and, with `arrays`, `<name>.npz`
    beside it; logs the result. Process 0 writes; returns `out`."""
    if parallel.is_main_process():
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(result, f, indent=2)
        if arrays is not None:
            np.savez(os.path.join(out, f"{name}.npz"), **arrays)
    logging.info("%s: %s", name, json.dumps(result))
    return out
