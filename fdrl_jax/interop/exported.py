"""A run's estimator (and prior) as one framework-neutral `.npz` (`python -m fdrl_jax.convert
--to=npz`), readable with numpy alone:

    params/<module>/.../<name>      the EMA params, named as our params tree
                                    (e.g. params/layer1_0/conv1/kernel, HWIO kernels)
    batch_stats/<wrapper>/<name>    spectral norm's power-iteration state, if the net has it
                                    ('/' inside a name is written %2F)
    prior/form, prior/shape         "full" or "lowrank", and the event shape, for a
    prior/mean, prior/chol          data-dependent prior: μ and a square root L of Σ
    (or prior/factors, prior/diag_std)  (Σ = L Lᵀ), or V and √ψ (Σ = V Vᵀ + diag ψ)
    step, config, format            optimiser steps, the run's config as JSON, this layout's name

`load_export` reads it back into flax variables and our prior, bit for bit.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from fdrl_jax.errors import DataError
from fdrl_jax.interop.npz import load_params, save_params
from fdrl_jax.priors import FullCovariancePrior, LowRankPrior

FORMAT = "fdrl-jax-export-1"
_PRIORS = {"full": FullCovariancePrior, "lowrank": LowRankPrior}


@dataclasses.dataclass
class Exported:
    variables: dict  # {"params": ..., ["batch_stats": ...]}: what the model's apply takes
    prior: FullCovariancePrior | LowRankPrior | None
    step: int
    config: dict


def save_export(path: str, variables: dict, prior, step: int, config_json: str) -> None:
    """Write `variables` (and a data-dependent `prior`, if given) to `path` as above."""
    tree = {k: v for k, v in variables.items() if v}
    if prior is not None:
        form = "lowrank" if isinstance(prior, LowRankPrior) else "full"
        fields = {f.name: np.asarray(getattr(prior, f.name)) for f in dataclasses.fields(prior)}
        fields["shape"] = np.asarray(prior.shape, np.int64)
        tree["prior"] = {**fields, "form": np.asarray(form)}
    tree.update(step=np.asarray(step, np.int64), config=np.asarray(config_json))
    tree["format"] = np.asarray(FORMAT)
    save_params(path, tree)


def load_export(path: str) -> Exported:
    """What `save_export` wrote."""
    tree = load_params(path)
    if str(tree.get("format", "")) != FORMAT or "params" not in tree:
        raise DataError(
            f"{path} is not an export of fdrl-jax (expected keys params/..., step, config and "
            f"format = {FORMAT!r})."
        )
    prior = None
    if "prior" in tree:
        p = dict(tree["prior"])
        cls = _PRIORS[str(p.pop("form"))]
        shape = tuple(int(s) for s in p.pop("shape"))
        prior = cls(**p, shape=shape)
    variables = {k: tree[k] for k in tree if k not in ("prior", "step", "config", "format")}
    return Exported(
        variables=variables,
        prior=prior,
        step=int(tree["step"]),
        config=json.loads(str(tree["config"])),
    )
