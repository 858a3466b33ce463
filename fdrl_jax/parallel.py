"""Scale-out on JAX's own machinery: one `Mesh` over all devices with a `data` axis.

Batches (data, prior draws, and so the whole flow) are sharded along `data`; params, optimiser
state and EMA params are replicated. Multi-host runs start with `initialize` (a no-op on one
host) and every process runs the same program; only process 0 writes logs and figures.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from fdrl_jax.errors import ConfigError

DATA_AXIS = "data"


def _cluster_detected() -> bool:
    """A multi-process launch that `jax.distributed.initialize()` can configure itself."""
    env = os.environ
    return (
        int(env.get("SLURM_NTASKS", "1")) > 1
        or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
        or "," in env.get("TPU_WORKER_HOSTNAMES", "")
        or "JAX_COORDINATOR_ADDRESS" in env
    )


def initialize(
    mode: str = "auto",
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Join a multi-process run: "on" always, "off" never, "auto" when a cluster is detected
    (SLURM, Open MPI, a multi-worker TPU slice) or an address is given."""
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"--distributed must be auto, on or off; got {mode!r}")
    if mode == "off" or (mode == "auto" and not (coordinator_address or _cluster_detected())):
        return
    # CPU processes need a collectives backend to talk to each other; GPUs/TPUs ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )
    logging.info(
        "Process %d of %d; %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: all devices of all processes)."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch(batch_size: int, mesh: Mesh, what: str = "train.batch_size") -> None:
    if batch_size % mesh.size:
        raise ConfigError(
            f"The global batch ({what} = {batch_size}) must be divisible by the number of "
            f"devices ({mesh.size}); use a multiple of {mesh.size}, e.g. "
            f"{max(mesh.size, batch_size - batch_size % mesh.size)}."
        )


def batch_constraint(mesh: Mesh) -> Callable[[jax.Array], jax.Array]:
    """Inside jit: lay a batch out along the `data` axis (leading dimension)."""
    sharding = batch_sharded(mesh)
    return lambda x: jax.lax.with_sharding_constraint(x, sharding)


def abstract_like(tree, sharding):
    """Shapes/dtypes of `tree` with `sharding`: a restore target for orbax on this mesh."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def to_host(tree):
    """Replicated (or host-local) arrays as numpy, on every process."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if x.sharding.is_fully_replicated:
                return np.asarray(x.addressable_shards[0].data)
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(get, tree)


def global_batch(local: np.ndarray, mesh: Mesh) -> jax.Array:
    """This process's rows of a batch -> one global array sharded along `data`."""
    return jax.make_array_from_process_local_data(batch_sharded(mesh), local)


def is_main_process() -> bool:
    return jax.process_index() == 0
