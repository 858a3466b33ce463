"""Reading and writing the reference implementation's PyTorch files: its checkpoints and its
pickled data-dependent prior. torch is imported inside these functions only (an optional
dependency: `pip install torch`, the CPU build is enough); everything else in `interop` works
on the numpy arrays these return.

Files are read with `torch.load(weights_only=True)`, which unpickles tensors and plain
containers only (nothing in a file can run code), allowing the two distribution classes a
prior file holds.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping

import numpy as np

from fdrl_jax.errors import DataError, MissingDependencyError, MissingFileError


def _torch():
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError(
            "Reading or writing the reference's PyTorch files needs torch: `pip install torch` "
            "(the CPU build is enough), or `pip install -e .[torch]`."
        ) from e
    return torch


def _to_numpy(obj):
    """Tensors as numpy arrays, recursively through dicts (order kept), lists and tuples."""
    torch = _torch()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, Mapping):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_numpy(v) for v in obj)
    return obj


def _load(path: str, what: str, safe: list | None = None):
    torch = _torch()
    if not os.path.isfile(path):
        raise MissingFileError(f"No {what} at {path!r}.")
    try:
        with torch.serialization.safe_globals(safe or []):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise DataError(
            f"{path} could not be read as a {what} with torch.load(weights_only=True): "
            f"{str(e).splitlines()[0][:300]}"
        ) from e


def load_checkpoint(path: str):
    """A `torch.save`d checkpoint with its tensors as numpy arrays (not checked here)."""
    return _to_numpy(_load(path, "reference checkpoint (.pt)"))


def load_reference_prior(path: str) -> dict[str, np.ndarray]:
    """The reference's pickled prior (`<dataset>_ddp.pt`): {"loc", "scale_tril"} of a
    MultivariateNormal or {"loc", "cov_factor", "cov_diag"} of a LowRankMultivariateNormal."""
    torch = _torch()
    dists = torch.distributions
    classes = [dists.MultivariateNormal, dists.LowRankMultivariateNormal, torch.Size]
    prior = _load(path, "reference prior (<dataset>_ddp.pt)", classes)
    if isinstance(prior, dists.MultivariateNormal):
        out = {"loc": prior.loc, "scale_tril": prior._unbroadcasted_scale_tril}
    elif isinstance(prior, dists.LowRankMultivariateNormal):
        out = {
            "loc": prior.loc,
            "cov_factor": prior._unbroadcasted_cov_factor,
            "cov_diag": prior._unbroadcasted_cov_diag,
        }
    else:
        raise DataError(
            f"{path} holds a {type(prior).__name__}; expected the reference's prior, a pickled "
            "torch.distributions.MultivariateNormal (attributes loc and "
            "_unbroadcasted_scale_tril) or LowRankMultivariateNormal."
        )
    if out["loc"].ndim != 1:
        raise DataError(f"{path}: expected one distribution over vectors, got batch shape.")
    return _to_numpy(out)


def save_reference_prior(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """`prior_to_reference`'s arrays as the pickled distribution the reference loads."""
    torch = _torch()
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    if "scale_tril" in t:
        prior = torch.distributions.MultivariateNormal(t["loc"], scale_tril=t["scale_tril"])
    else:
        prior = torch.distributions.LowRankMultivariateNormal(
            t["loc"], t["cov_factor"], t["cov_diag"]
        )
    torch.save(prior, path)


def save_checkpoint(
    path: str,
    *,
    step: int,
    model: Mapping[str, np.ndarray],
    ema: Mapping[str, np.ndarray],
    config: dict,
    order: list[str],
    moments: Mapping[str, tuple] | None,
    adam_count: int,
    lr: float,
    betas: tuple[float, float],
    decay_factor: float,
    decays: int,
) -> None:
    """A checkpoint as the reference's train_*.py saves it: {step (the file's: optimiser steps
    − 1), model, optim, ema, scheduler, config}. `optim` is torch.optim.Adam's state dict
    (parameters numbered in `order`, the reference's `model.parameters()` order; `moments`:
    name -> (exp_avg, exp_avg_sq), or None for a fresh optimiser) and `scheduler`
    ExponentialLR's after `decays` decays; torch fills in its other defaults on loading."""
    torch = _torch()

    def tensors(sd):
        return {k: torch.from_numpy(np.array(v, np.float32)) for k, v in sd.items()}

    lr_now = lr * decay_factor**decays
    state = {}
    if moments is not None:
        for i, name in enumerate(order):
            m, v = moments[name]
            state[i] = {
                "step": torch.tensor(float(adam_count)),
                "exp_avg": torch.from_numpy(np.array(m, np.float32)),
                "exp_avg_sq": torch.from_numpy(np.array(v, np.float32)),
            }
    group = {
        "lr": lr_now,
        "betas": tuple(float(b) for b in betas),
        "eps": 1e-8,  # optax's and torch's default
        "weight_decay": 0,
        "amsgrad": False,
        "initial_lr": lr,
        "params": list(range(len(order))),
    }
    scheduler = {
        "gamma": decay_factor,
        "base_lrs": [lr],
        "last_epoch": decays,
        "_step_count": decays + 1,
        "_last_lr": [lr_now],
    }
    torch.save(
        {
            "step": int(step),
            "model": tensors(model),
            "optim": {"state": state, "param_groups": [group]},
            "ema": tensors(ema),
            "scheduler": scheduler,
            "config": config,
        },
        path,
    )
