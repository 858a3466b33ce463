"""Params as a flat `.npz` with '/'-joined names ('Dense_0/kernel'): a framework-neutral file
that any tool reads, used for auxiliary models (GAN, classifier, discriminators), converted
Inception weights and exports of a run's params. Paths may be local or bucket URIs
(`gs://...`, through `etils.epath`), as work directories may be."""

from __future__ import annotations

import io
import os

import jax
import numpy as np
from etils import epath
from flax import traverse_util

from fdrl_jax.errors import MissingFileError


def save_params(path: str, params) -> None:
    """A params pytree as a flat .npz ('a/b/kernel' keys): portable between tools.

    A '/' inside one name (flax's spectral-norm state, e.g. 'Dense_0/kernel/u') is written as
    '%2F' so the nesting survives the round trip."""
    flat = traverse_util.flatten_dict(jax.device_get(params))
    buf = io.BytesIO()
    np.savez(
        buf,
        **{"/".join(p.replace("/", "%2F") for p in k): np.asarray(v) for k, v in flat.items()},
    )
    path = epath.Path(path if os.fspath(path).endswith(".npz") else f"{path}.npz")  # as np.savez
    path.parent.mkdir(parents=True, exist_ok=True)  # a local path needs its folder
    path.write_bytes(buf.getvalue())


def load_params(path: str):
    """The params pytree that `save_params` wrote (or any .npz with '/'-joined keys)."""
    if not epath.Path(path).exists():
        raise MissingFileError(
            f"No params file at {path!r}; train one (e.g. --mode=gan) or "
            "pass the path of an .npz with '/'-joined parameter names."
        )
    with np.load(io.BytesIO(epath.Path(path).read_bytes())) as z:
        flat = {tuple(p.replace("%2F", "/") for p in k.split("/")): z[k] for k in z.files}
    return traverse_util.unflatten_dict(flat)
