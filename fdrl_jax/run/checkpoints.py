"""Checkpoints of the train state (a thin wrapper over orbax's CheckpointManager), and the
restore every inference mode starts from."""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from fdrl_jax import parallel, trainer
from fdrl_jax.algorithms import TrainState
from fdrl_jax.errors import NoCheckpointError
from fdrl_jax.experiment import Experiment, build_experiment
from fdrl_jax.run import files


def _all_finite(tree) -> bool:
    return all(
        np.all(np.isfinite(x))
        for x in jax.tree.leaves(tree)
        if np.issubdtype(np.asarray(x).dtype, np.inexact)
    )


class Checkpointer:
    """Saves the train state every call to `save`; restores the newest checkpoint.

    Orbax writes each step to a temporary directory and renames it when complete (on a
    bucket, which cannot rename, it commits with a `commit_success.txt` written last), so a
    checkpoint interrupted mid-write is never taken for a finished one.
    """

    def __init__(self, directory: str, max_to_keep: int = 3, create: bool = True):
        # A local path or a bucket URI: orbax takes both as an epath.Path.
        self.directory = epath.Path(files.resolve(directory))
        self._bad_steps: set[int] = set()
        if not create and not self.directory.is_dir():
            self._manager = None
            return
        self._manager = ocp.CheckpointManager(
            self.directory,
            # Synchronous saves: when the log shows step N, N's checkpoint is complete, so a
            # crash loses at most one interval (a save is short next to an interval).
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=create, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        return None if self._manager is None else self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return [] if self._manager is None else sorted(self._manager.all_steps())

    def restore_latest(self, template):
        """The newest readable, finite state shaped like `template`; None if none was saved.

        `template` holds arrays or `jax.ShapeDtypeStruct`s; their shardings say where the
        state goes, so a checkpoint saved on any device count restores onto this one. A
        checkpoint that fails to load (truncated or corrupted files) or holds non-finite values
        is reported and skipped for the next older one; it is moved aside to
        `<directory>_corrupt/` (never deleted) only when this run saves that step again.
        """
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
            template,
        )
        steps = self.all_steps()
        for step in reversed(steps):
            try:
                state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
                problem = None if _all_finite(state) else "it holds non-finite values"
            except Exception as e:  # orbax/tensorstore raise many types for bad files
                problem = f"it is unreadable ({type(e).__name__}: {str(e)[:300]})"
            if problem is None:
                logging.info("Restored checkpoint %d from %s", step, self.directory)
                return state
            self._bad_steps.add(step)
            logging.warning("Skipping checkpoint %d: %s; trying an older one.", step, problem)
        if steps:
            raise NoCheckpointError(
                f"No usable checkpoint in {self.directory}: steps {steps} could not be restored "
                "(see the warnings above). Start a new run in another --workdir, or move the "
                "checkpoints away."
            )
        return None

    def _quarantine(self, step: int) -> str:
        """Move a bad step aside (never delete it) so the step can be written again."""
        dest_root = self.directory.with_name(self.directory.name + "_corrupt")
        dest_root.mkdir(parents=True, exist_ok=True)
        # (on a bucket, an empty "directory" does not exist)
        taken = len(list(dest_root.iterdir())) if dest_root.exists() else 0
        dest = dest_root / f"{step}_{taken}"
        (self.directory / str(step)).rename(dest)  # on a bucket: copies, then deletes
        self._manager.reload()
        return os.fspath(dest)

    def save(self, step: int, state) -> None:
        if step in self._bad_steps:  # rewriting a step that failed to restore: keep the old one
            moved = self._quarantine(step)
            self._bad_steps.discard(step)
            logging.warning(
                "Moved unusable checkpoint %d to %s before saving it again.", step, moved
            )
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def wait(self) -> None:
        """Block until any save in flight is complete on disk."""
        if self._manager is not None:
            self._manager.wait_until_finished()

    def close(self) -> None:
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()


def restore_for_inference(config, workdir: str) -> tuple[Experiment, TrainState]:
    """The experiment and the latest checkpointed state of `workdir`, on this process's devices
    (a checkpoint written on any device or process count restores here)."""
    exp = build_experiment(config, prior_cache=files.PriorFile(workdir))
    files.warn_if_config_differs(config, workdir)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), create=False)
    state = ckpt.restore_latest(trainer.state_template(exp, parallel.make_mesh()))
    ckpt.close()
    if state is None:
        raise NoCheckpointError(
            f"No checkpoint in {workdir}/checkpoints: train first with "
            f"--mode=train --workdir={workdir}"
        )
    return exp, state
