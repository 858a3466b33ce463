"""A thin wrapper over orbax's CheckpointManager for the train state."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp
from absl import logging


class Checkpointer:
    """Saves the train state every call to `save`; restores the newest checkpoint.

    Orbax writes each step to a temporary directory and renames it when complete, so a
    checkpoint interrupted mid-write is never taken for a finished one.
    """

    def __init__(self, directory: str, max_to_keep: int = 3, create: bool = True):
        self.directory = os.path.abspath(directory)
        if not create and not os.path.isdir(self.directory):
            self._manager = None
            return
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create),
        )

    def latest_step(self) -> int | None:
        return None if self._manager is None else self._manager.latest_step()

    def restore_latest(self, template):
        """The newest saved state, with the structure of `template`; None if none saved."""
        step = self.latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        logging.info("Restoring checkpoint %d from %s", step, self.directory)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def save(self, step: int, state) -> None:
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()
