"""The files of a run directory (`--workdir`), a contract other tools read:

    <workdir>/config.json      resolved config of the run
    <workdir>/checkpoints/     orbax checkpoints (run/checkpoints.py)
    <workdir>/metrics.jsonl    one JSON object per logged step
    <workdir>/metrics.png      the logged curves
    <workdir>/samples/         sample grids / scatter plots during training
    <workdir>/prior.npz        the fitted data-dependent prior, reused while its settings hold
    <workdir>/tensorboard/     TensorBoard summaries (when TensorFlow and clu are installed)
    <workdir>/eval/            what the inference modes write

Every read and write of those files is here. Only process 0 writes; every process reads.

A work directory is a local path or a bucket URI (`gs://bucket/runs/x`, `s3://...`): every
file goes through `etils.epath`, as orbax's checkpoints do (no `open`, `os.makedirs` or
`os.path` on a run file). Buckets differ from disks in three ways that shape the helpers:
- no appends: `MetricsLog` rewrites the whole object (a local file is still appended to);
- an object appears only when its upload completes, so every write is whole (`write_bytes`),
  and local writes get the same guarantee from a temporary file and a rename;
- directories are only prefixes of object names: `makedirs` makes nothing there.
`gs://` needs TensorFlow (epath then uses `tf.io.gfile`) or gcsfs (`pip install
fdrl-jax[gcs]`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from etils import epath

from fdrl_jax import configlib, parallel
from fdrl_jax.errors import WorkdirError
from fdrl_jax.experiment import INPUT_PATH_FIELDS
from fdrl_jax.priors import FullCovariancePrior, LowRankPrior

PathLike = str | os.PathLike

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


# ------------------------------------------------------------------ paths and whole files


def is_remote(path: PathLike) -> bool:
    """A URI with a scheme (gs://, s3://, ...), not a local path."""
    return "://" in os.fspath(path)


def resolve(workdir: PathLike) -> str:
    """The work directory as the run names it: a local path made absolute (as before), a URI
    unchanged (`os.path.abspath` would turn `gs://b/x` into `<cwd>/gs:/b/x`)."""
    workdir = os.fspath(workdir)
    return workdir.rstrip("/") if is_remote(workdir) else os.path.abspath(workdir)


def path(p: PathLike, *parts: str) -> epath.Path:
    return epath.Path(p).joinpath(*parts)


def makedirs(p: PathLike) -> epath.Path:
    p = epath.Path(p)
    p.mkdir(parents=True, exist_ok=True)
    return p


def exists(p: PathLike) -> bool:
    return epath.Path(p).exists()


def write_bytes(p: PathLike, data: bytes) -> None:
    """Write a whole file: readers see the old content or the new, never part of it."""
    p = epath.Path(p)
    if is_remote(p):  # an object appears only when its upload is complete
        with p.open("wb") as f:
            f.write(data)
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f"{p.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        f.write(data)
    os.replace(tmp, p)


def write_text(p: PathLike, text: str) -> None:
    write_bytes(p, text.encode("utf-8"))


def read_text(p: PathLike) -> str:
    return epath.Path(p).read_text()


def write_json(p: PathLike, obj, **kwargs) -> None:
    write_text(p, json.dumps(obj, **kwargs))


def read_json(p: PathLike):
    return json.loads(read_text(p))


def save_npz(p: PathLike, **arrays) -> str:
    """`np.savez` to any path, written whole; like it, adds `.npz` to a name without it.
    Returns the path written."""
    p = os.fspath(p)
    if not p.endswith(".npz"):
        p += ".npz"
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(p, buf.getvalue())
    return p


def load_npz(p: PathLike) -> dict[str, np.ndarray]:
    """Every array of an .npz at any path (read into memory)."""
    data = epath.Path(p).read_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_figure(fig, p: PathLike, **savefig_kwargs) -> None:
    """A matplotlib figure, in the format of the path's extension."""
    buf = io.BytesIO()
    fmt = os.path.splitext(os.fspath(p))[1].lstrip(".") or "png"
    fig.savefig(buf, format=fmt, **savefig_kwargs)
    write_bytes(p, buf.getvalue())


def save_image(img, p: PathLike) -> None:
    """A PIL image, in the format of the path's extension."""
    buf = io.BytesIO()
    fmt = os.path.splitext(os.fspath(p))[1].lstrip(".").upper() or "PNG"
    img.save(buf, format="JPEG" if fmt == "JPG" else fmt)
    write_bytes(p, buf.getvalue())


# ------------------------------------------------------------------ the run's own files


def check_writable(workdir: PathLike) -> None:
    """Create the run directory (and samples/) or fail with a clear message, before any data
    is loaded or any prior fitted."""
    # One probe per process: processes of one run sharing a probe file raced on it.
    probe = path(workdir, f".write_test.{jax.process_index()}")
    try:
        makedirs(path(workdir, "samples"))
        write_text(probe, "ok")
        probe.unlink()
    except OSError as e:
        raise WorkdirError(
            f"Cannot write to --workdir={workdir} ({e.strerror or e}); choose a writable "
            "directory or bucket."
        ) from e


def write_config(config, workdir: PathLike) -> None:
    if parallel.is_main_process():
        write_text(
            path(workdir, "config.json"), config.to_json_best_effort(indent=2, sort_keys=True)
        )


def warn_if_config_differs(config, workdir: PathLike) -> list[str]:
    """Fields (outside the inference sections) where `config` differs from the run's
    config.json; logs them as a warning."""
    p = path(workdir, "config.json")
    if not p.exists():
        return []
    saved = configlib.flatten(read_json(p))
    now = configlib.flatten(json.loads(config.to_json_best_effort()))
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


def _read_records(p: epath.Path) -> list[str]:
    """The log's lines that parse (a line cut by a crash does not)."""
    if not p.exists():
        return []
    lines = []
    for ln in p.read_text().splitlines(keepends=True):
        try:
            json.loads(ln)
        except json.JSONDecodeError:
            continue
        lines.append(ln if ln.endswith("\n") else ln + "\n")
    return lines


class MetricsLog:
    """<workdir>/metrics.jsonl: one JSON object per logged step (process 0 writes).

    A local file is appended to and flushed line by line. A bucket object cannot be appended
    to, so the lines are kept here and the whole object is rewritten at each `sync()` (the
    loop calls it at checkpoints and figures), on `close()`, and at most every
    `remote_flush_s` seconds otherwise: a crash loses at most the lines since then, as a local
    crash loses the lines past the checkpoint the run resumes from.
    """

    def __init__(self, workdir: PathLike, remote_flush_s: float = 30.0):
        self.path = path(workdir, "metrics.jsonl")
        self._remote = is_remote(self.path)
        self._flush_s = remote_flush_s
        self._lines: list[str] | None = None  # a bucket's log, once read
        self._file = None
        self._synced = time.monotonic()

    def truncate(self, max_step: int) -> None:
        """Drop lines past `max_step` (a resumed or rolled-back run reads as one run)."""
        if not parallel.is_main_process():
            return
        self.close()
        keep = [ln for ln in _read_records(self.path) if json.loads(ln).get("step", 0) <= max_step]
        if self._remote:
            self._lines = keep
            self.sync()
        elif keep or self.path.exists():
            write_text(self.path, "".join(keep))

    def write(self, row: dict) -> None:
        if not parallel.is_main_process():
            return
        line = json.dumps(row) + "\n"
        if self._remote:
            if self._lines is None:
                self._lines = _read_records(self.path)
            self._lines.append(line)
            if time.monotonic() - self._synced >= self._flush_s:
                self.sync()
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a")  # closed in close()
        self._file.write(line)
        self._file.flush()

    def sync(self) -> None:
        """Make every line written so far readable at `path` (a local file already is)."""
        if self._remote and self._lines is not None and parallel.is_main_process():
            write_text(self.path, "".join(self._lines))
            self._synced = time.monotonic()

    def close(self) -> None:
        self.sync()
        if self._file is not None:
            self._file.close()
            self._file = None


_PRIOR_CLASSES = {"full": FullCovariancePrior, "lowrank": LowRankPrior}


def save_prior(path: PathLike, prior, fingerprint: str) -> None:
    """Store a fitted prior (and what it was fitted to) so later runs reuse it; written whole
    (a crash never leaves half a file), to a local path or a bucket."""
    form = "lowrank" if isinstance(prior, LowRankPrior) else "full"
    arrays = {k: np.asarray(v) for k, v in vars(prior).items() if k != "shape"}
    save_npz(path, form=form, shape=np.asarray(prior.shape), fingerprint=fingerprint, **arrays)


def load_prior(path: PathLike, fingerprint: str):
    """The prior stored at `path`, or None if absent, unreadable or fitted to something else."""
    if not exists(path):
        return None
    try:
        z = load_npz(path)
        if str(z["fingerprint"]) != fingerprint:
            logging.info("%s was fitted with other settings; fitting again", path)
            return None
        cls = _PRIOR_CLASSES[str(z["form"])]
        fields = [f.name for f in dataclasses.fields(cls) if f.name != "shape"]
        return cls(
            **{f: jnp.asarray(z[f]) for f in fields}, shape=tuple(int(s) for s in z["shape"])
        )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        logging.warning("Ignoring unreadable prior file %s (%s); fitting again", path, e)
        return None


@dataclasses.dataclass(frozen=True)
class PriorFile:
    """<workdir>/prior.npz as the `prior_cache` of `experiment.build_experiment`: the run's
    fitted prior, reused by later runs and modes while its settings hold."""

    workdir: str

    @property
    def path(self) -> str:
        return os.fspath(path(self.workdir, "prior.npz"))

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


def write_results(out: PathLike, name: str, result: dict, arrays: dict | None = None) -> str:
    """What a mode writes: `<out>/<name>.json` (the result) and, with `arrays`, `<name>.npz`
    beside it; logs the result. Process 0 writes; returns `out`."""
    out = os.fspath(out)
    if parallel.is_main_process():
        write_json(path(out, f"{name}.json"), result, indent=2)
        if arrays is not None:
            save_npz(path(out, f"{name}.npz"), **arrays)
    logging.info("%s: %s", name, json.dumps(result))
    return out
