"""The reference implementation's checkpoints and data-dependent prior <-> our train state and
prior (numpy only; the torch files themselves are read and written by `torch_files`).

A reference checkpoint (the `torch.save` at the end of its train_*.py loops) is a dict:
  step       the index of the last iteration run (0-based), so step + 1 optimiser steps were taken
  model      the net's state dict (keys prefixed `module.` when it trained under nn.DataParallel)
  optim      torch.optim.Adam's state dict: per-parameter `step`, `exp_avg`, `exp_avg_sq`, indexed
             by the order of `model.parameters()` (the state dict's order without its buffers)
  ema        the EMA shadow: every state-dict entry, spectral norm's `weight_u` / `weight_v`
             included, averaged like the weights (never prefixed)
  scheduler  ExponentialLR's state dict (`_last_lr`, `last_epoch`, `gamma`)
  config     the run's config: a plain dict (its YAML file plus command-line overrides)
Its data-dependent prior (`<dataset>_ddp.pt`, from dataset_setup.py) is a pickled
`torch.distributions.MultivariateNormal(μ, Σ + 1e-4 I)` over images flattened in (C, H, W)
order (it samples with `.reshape(-1, 3, H, W)`); ours flattens (H, W, C).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
from flax import traverse_util

from fdrl_jax.errors import DataError
from fdrl_jax.interop import state_dict
from fdrl_jax.priors import FullCovariancePrior, LowRankPrior

EXPECTED_KEYS = ("step", "model", "optim", "ema", "scheduler", "config")
REQUIRED_KEYS = ("step", "model", "config")  # without optim / scheduler: a fresh Adam state
_BUFFERS = (".weight_u", ".weight_v")  # spectral norm's; every other entry is a parameter


@dataclasses.dataclass
class ReferenceCheckpoint:
    """A reference checkpoint with its tensors as numpy arrays (dict order kept)."""

    step: int  # optimiser steps taken (the file's `step` + 1)
    model: dict[str, np.ndarray]
    ema: dict[str, np.ndarray] | None
    optim: dict | None
    scheduler: dict | None
    config: dict


def _describe(obj) -> str:
    if isinstance(obj, Mapping):
        keys = sorted(str(k) for k in obj)
        return f"a dict with keys {keys[:12]}{' ...' if len(keys) > 12 else ''}"
    return f"a {type(obj).__name__}"


def strip_data_parallel(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The state dict without nn.DataParallel's `module.` prefix (order kept)."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def parse_checkpoint(obj, path: str) -> ReferenceCheckpoint:
    """A loaded reference checkpoint (tensors already numpy), checked; raises DataError naming
    the expected keys when `obj` is not one."""
    if not isinstance(obj, Mapping) or any(k not in obj for k in REQUIRED_KEYS):
        raise DataError(
            f"{path} is not a reference checkpoint: expected a dict with keys "
            f"{list(EXPECTED_KEYS)} (what the reference's train_*.py saves with torch.save; "
            f"optim and scheduler may be missing), found {_describe(obj)}."
        )
    model, ema = obj["model"], obj.get("ema")
    for name, value in (("model", model), ("ema", ema)):
        if value is not None and not (
            isinstance(value, Mapping) and all(isinstance(v, np.ndarray) for v in value.values())
        ):
            raise DataError(
                f"{path}: `{name}` should be a state dict (parameter name -> tensor); found "
                f"{_describe(value)}."
            )
    config = obj["config"]
    if not isinstance(config, Mapping):
        raise DataError(f"{path}: `config` should be a dict; found {_describe(config)}.")
    return ReferenceCheckpoint(
        step=int(np.asarray(obj["step"])) + 1,
        model=strip_data_parallel(model),
        ema=strip_data_parallel(ema) if ema else None,
        optim=obj.get("optim"),
        scheduler=obj.get("scheduler"),
        config=dict(config),
    )


def parameter_order(model: Mapping[str, np.ndarray]) -> list[str]:
    """The reference's parameter names in `model.parameters()` order: its state dict's order
    without the buffers (torch lists a module's parameters, then its buffers, then its
    children's, in both)."""
    return [k for k in model if not k.endswith(_BUFFERS)]


_CONV_RANK = {"conv1": 0, "conv2": 1, "shortcut_conv": 2}
_ATTENTION_RANK = {"gamma": 0, "key": 1, "query": 2, "value": 3, "self_att": 4}
# a layer's own parameters: weight, bias; with spectral norm bias, then weight_orig (torch's
# spectral_norm removes `weight` and registers `weight_orig` after the bias)
_LEAF_RANK = {"weight": 0, "bias": 1, "weight_orig": 2}


def reference_parameter_order(names: list[str], attention_after: int | None) -> list[str]:
    """The reference's parameter names in its `model.parameters()` order (which numbers its
    optimiser state), as its modules register them: conv1, layer1.0 (conv1, conv2,
    shortcut_conv) ..., self_attn_module (γ, then key, query, value, self_att) after stage
    `attention_after` + 1, linear; the MLP's mlp.0, mlp.2, ...."""

    def key(name: str):
        *mods, leaf = name.split(".")
        leaf_rank = _LEAF_RANK.get(leaf, 0)
        if mods[0] == "conv1":
            return (0, 0, 0, 0, leaf_rank)
        if mods[0].startswith("layer"):
            stage = int(mods[0][len("layer") :])
            return (stage, 0, int(mods[1]), _CONV_RANK[mods[2]], leaf_rank)
        if mods[0] == "self_attn_module":
            inner = _ATTENTION_RANK[mods[1] if len(mods) > 1 else leaf]
            return ((attention_after or 0) + 1, 1, inner, 0, leaf_rank)
        if mods[0] == "mlp":
            return (int(mods[1]), 0, 0, 0, leaf_rank)
        return (float("inf"), 0, 0, 0, leaf_rank)  # linear, the head

    return sorted(names, key=key)


@dataclasses.dataclass
class AdamMoments:
    """Adam's state, flat params paths -> arrays in our layout."""

    count: int
    mu: dict[tuple[str, ...], np.ndarray]
    nu: dict[tuple[str, ...], np.ndarray]


def adam_from_reference(
    optim: Mapping, order: list[str], template: Mapping
) -> tuple[AdamMoments, list[str]]:
    """torch.optim.Adam's state dict as our Adam moments, and warnings (different betas or
    eps, amsgrad, weight decay). `order` is the reference's parameter order
    (`parameter_order`), `template` our variables. Raises ValueError when the optimiser does
    not hold this net's parameters."""
    names = state_dict.param_names(template)
    by_name = {name: path for path, name in names.items()}
    groups = list(optim.get("param_groups", []))
    ids = [i for g in groups for i in g.get("params", [])]
    if len(ids) != len(order) or set(order) != set(by_name):
        raise ValueError(
            f"the optimiser holds {len(ids)} parameters, the net {len(by_name)} "
            f"(state dict: {len(order)})"
        )
    flat = traverse_util.flatten_dict(dict(template["params"]))
    shapes = {p: tuple(v.shape) for p, v in flat.items()}
    state = {int(k): v for k, v in dict(optim.get("state", {})).items()}
    mu, nu, counts = {}, {}, set()
    for i, name in zip(ids, order, strict=True):
        path = by_name[name]
        entry = state.get(int(i))
        if entry is None:  # a parameter that never had a gradient
            mu[path] = nu[path] = np.zeros(shapes[path], np.float32)
            continue
        mu[path] = state_dict.from_torch_layout(entry["exp_avg"], path[-1], shapes[path])
        nu[path] = state_dict.from_torch_layout(entry["exp_avg_sq"], path[-1], shapes[path])
        counts.add(int(np.asarray(entry["step"])))
    warnings = []
    g = groups[0] if groups else {}
    if g.get("amsgrad") or g.get("weight_decay"):
        warnings.append(
            f"the reference's Adam used amsgrad={g.get('amsgrad')}, weight_decay="
            f"{g.get('weight_decay')}; training here continues with plain Adam"
        )
    if len(counts) > 1:
        warnings.append(f"Adam's step counts differ between parameters: {sorted(counts)}")
    moments = AdamMoments(count=max(counts, default=0), mu=mu, nu=nu)
    return moments, warnings


def adam_to_reference(moments: AdamMoments, template: Mapping) -> dict[str, tuple]:
    """Our Adam moments as {reference parameter name: (exp_avg, exp_avg_sq)} in its layout."""
    names = state_dict.param_names(template)
    return {
        names[p]: (
            state_dict.to_torch_layout(moments.mu[p], p[-1]).astype(np.float32),
            state_dict.to_torch_layout(moments.nu[p], p[-1]).astype(np.float32),
        )
        for p in names
    }


def chw_index(shape: tuple[int, ...]) -> np.ndarray:
    """For each position of an event flattened in our order ((H, W, C) images), its index in
    the reference's (C, H, W) flattening; the identity for vectors."""
    d = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(d)
    h, w, c = shape
    return np.arange(d).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def reference_prior_shape(dim: int, img_size: int | None = None) -> tuple[int, ...]:
    """The (H, W, C) event shape of a reference prior over `dim` values: its images have 3
    channels (it samples with `.reshape(-1, 3, img_size, img_size)`)."""
    side = math.isqrt(dim // 3)
    if 3 * side * side != dim or (img_size and int(img_size) != side):
        raise DataError(
            f"A prior over {dim} values is not one of the reference's 3×H×H image priors"
            + (f" with img_size {img_size}" if img_size else "")
            + "."
        )
    return (side, side, 3)


def prior_from_reference(arrays: Mapping[str, np.ndarray], shape: tuple[int, ...]):
    """The reference's prior as ours over events of `shape`, reordered from (C, H, W) to our
    flattening. `arrays`: `loc` and `scale_tril` (MultivariateNormal: its Cholesky factor of Σ
    + 1e-4 I, taken as is, so no refactorisation) or `cov_factor` and `cov_diag`
    (LowRankMultivariateNormal)."""
    loc = np.asarray(arrays["loc"], np.float32).reshape(-1)
    if loc.size != int(np.prod(shape)):
        raise DataError(f"The prior has {loc.size} dimensions; the data's shape is {shape}.")
    idx = chw_index(shape)
    if "scale_tril" in arrays:
        # Rows permuted: (P L)(P L)ᵀ = P Σ Pᵀ exactly; the factor is no longer triangular,
        # which sampling (μ + L ε) does not need.
        chol = np.asarray(arrays["scale_tril"], np.float32)[idx]
        return FullCovariancePrior(mean=loc[idx], chol=chol, shape=tuple(shape))
    factors = np.asarray(arrays["cov_factor"], np.float32)[idx]
    diag_std = np.sqrt(np.asarray(arrays["cov_diag"], np.float32)[idx])
    return LowRankPrior(mean=loc[idx], factors=factors, diag_std=diag_std, shape=tuple(shape))


def prior_to_reference(prior) -> dict[str, np.ndarray]:
    """Our data-dependent prior in the reference's (C, H, W) order: `loc` and `scale_tril`
    (lower triangular, as torch requires) or `cov_factor` and `cov_diag`."""
    shape = tuple(prior.shape)
    back = np.argsort(chw_index(shape))  # reference position -> our position
    mean = np.asarray(prior.mean, np.float32)[back]
    if isinstance(prior, LowRankPrior):
        return {
            "loc": mean,
            "cov_factor": np.asarray(prior.factors, np.float32)[back],
            "cov_diag": np.asarray(prior.diag_std, np.float32)[back] ** 2,
        }
    factor = np.asarray(prior.chol, np.float32)[back]
    if np.any(np.triu(factor, 1)):  # fitted here in (H, W, C) order: factor the reordered Σ
        cov = factor.astype(np.float64) @ factor.T.astype(np.float64)
        factor = np.linalg.cholesky(cov).astype(np.float32)
    return {"loc": mean, "scale_tril": factor}
