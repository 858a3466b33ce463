"""The mesh helpers (`parallel.py`) on the 8 simulated devices: a global batch from
process-local rows, sharded along `data`, back on the host; a batch the mesh cannot divide is
a clear error."""

import jax
import numpy as np
import pytest

from fdrl_jax import parallel


def test_global_batch_from_process_local_rows():
    mesh = parallel.make_mesh(jax.devices())
    x = parallel.global_batch(np.arange(32.0).reshape(16, 2), mesh)
    assert x.shape == (16, 2) and x.sharding == parallel.batch_sharded(mesh)
    assert len(x.addressable_shards) == 8
    np.testing.assert_array_equal(parallel.to_host(x), np.arange(32.0).reshape(16, 2))


def test_a_batch_the_devices_cannot_share_names_both_numbers():
    mesh = parallel.make_mesh(jax.devices())
    parallel.check_batch(64, mesh)
    with pytest.raises(ValueError, match=r"train.batch_size = 100.*devices \(8\).*e.g. 96"):
        parallel.check_batch(100, mesh)
